/**
 * Xen and libc constants the bindings rely on, beyond the ioreq ABI in
 * src/ioreq/abi.ts. test/xen/abi.test.ts checks each against the installed
 * headers.
 */
export const HVM_MAX_VCPUS = 128; // xen/hvm/hvm_info_table.h; also 4096 / sizeof(ioreq_t)
export const DOMID_FIRST_RESERVED = 0x7ff0; // xen/xen.h
export const HVM_BELOW_4G_RAM_END = 0xf0000000; // xen/hvm/e820.h: 4 GiB - the default 256 MiB MMIO hole

// xen/hvm/dm_op.h: the is_mmio argument of map_io_range is 0/1 = PORT/MEMORY.
export const XEN_DMOP_IO_RANGE_PORT = 0;
export const XEN_DMOP_IO_RANGE_MEMORY = 1;
export const XEN_DMOP_IO_RANGE_PCI = 2;
export const XEN_DMOP_MEM_CACHEATTR_UC = 0;
export const XEN_DMOP_MEM_CACHEATTR_WB = 6;

// xen/hvm/hvm_op.h, hvmmem_type_t (with __XEN_TOOLS__, interface 0x00040e00).
export const HVMMEM_ram_rw = 0;
export const HVMMEM_ram_ro = 1;
export const HVMMEM_mmio_dm = 2;

// xen/sched.h
export const SHUTDOWN_poweroff = 0;
export const SHUTDOWN_reboot = 1;

// xenstore.h
export const XBT_NULL = 0;

// sys/mman.h (Linux)
export const PROT_READ = 1;
export const PROT_WRITE = 2;

// errno.h (Linux): xenevtchn_pending on a non-blocking fd with nothing pending.
export const EAGAIN = 11;
