# What `npm install` builds (the package's install script runs node-gyp here,
# against the headers of the Node that runs npm): the N-API addons and the
# -serial pty helper, into native/build/Release/, where src/paths.ts finds
# them. A git checkout builds the same sources with scripts/build-native.sh
# into build/ (plus stubdm-kill-guest, which needs the Xen libraries and runs
# only in the stub domain: not built here). test/scripts/pack.test.ts checks
# that this list and native/*.c agree.
{
  'target_defaults': {
    'cflags_c': ['-std=gnu11', '-O2', '-Wall', '-Wextra', '-fvisibility=hidden'],
  },
  'targets': [
    { 'target_name': 'fdwatch', 'sources': ['fdwatch.c'] },
    { 'target_name': 'unixsock', 'sources': ['unixsock.c'] },
    { 'target_name': 'stubdm-pty', 'type': 'executable', 'sources': ['stubdm-pty.c'] },
  ],
}
