/** Intel 82540EM (e1000) NIC: see e1000.ts. */
export * from './e1000.ts';
export { TX_DATA_MAX, TX_FRAME_BUDGET } from './tx.ts';
export { rxBufSize } from './rx.ts';
export { buildEeprom, EEPROM_WORDS, EEPROM_SUM } from './eeprom.ts';
