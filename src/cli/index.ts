export * from './config.ts';
export { CliError, EMULATED_DEVICES, helpText, parseArgs } from './parse.ts';
