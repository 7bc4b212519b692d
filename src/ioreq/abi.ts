/**
 * The ioreq ABI of Xen 4.17 (xen/include/public/hvm/ioreq.h), as offsets and
 * masks into the shared pages. test/xen/abi.test.ts compiles a C program against
 * the installed headers and checks every number here.
 */

// ioreq_t: 32 bytes, one per vCPU in shared_iopage_t (indexed by vcpu_id).
export const IOREQ_SIZE = 32;
export const IOREQ_OFF_ADDR = 0; // u64: port, guest-physical address, or SBDF<<32 | register
export const IOREQ_OFF_DATA = 8; // u64: value, or guest-physical address of a buffer when data_is_ptr
export const IOREQ_OFF_COUNT = 16; // u32: repetitions
export const IOREQ_OFF_SIZE = 20; // u32: bytes per access
export const IOREQ_OFF_VP_EPORT = 24; // u32: Xen-side event channel of this vCPU
export const IOREQ_OFF_FLAGS = 30; // u8: state:4 | data_is_ptr:1 | dir:1 | df:1 | pad:1
export const IOREQ_OFF_TYPE = 31; // u8

export const IOREQ_STATE_MASK = 0x0f;
export const IOREQ_DATA_IS_PTR = 0x10;
export const IOREQ_DIR = 0x20; // set = IOREQ_READ
export const IOREQ_DF = 0x40; // direction flag: addresses step downwards

export const IOREQ_READ = 1;
export const IOREQ_WRITE = 0;

export const STATE_IOREQ_NONE = 0;
export const STATE_IOREQ_READY = 1;
export const STATE_IOREQ_INPROCESS = 2;
export const STATE_IORESP_READY = 3;

export const IOREQ_TYPE_PIO = 0;
export const IOREQ_TYPE_COPY = 1;
export const IOREQ_TYPE_PCI_CONFIG = 2;
export const IOREQ_TYPE_TIMEOFFSET = 7;
export const IOREQ_TYPE_INVALIDATE = 8;

// buffered_iopage_t: read_pointer, write_pointer, then 511 slots of buf_ioreq_t (8 bytes).
export const BUF_OFF_READ_POINTER = 0;
export const BUF_OFF_WRITE_POINTER = 4;
export const BUF_OFF_SLOTS = 8;
export const BUF_SLOT_SIZE = 8;
export const IOREQ_BUFFER_SLOT_NUM = 511;
// buf_ioreq_t word 0 (little-endian u32): type:8 | pad:1 | dir:1 | size:2 | addr:20; word 1: data (u32).
export const BUF_TYPE_MASK = 0xff;
export const BUF_PAD_BIT = 0x100;
export const BUF_DIR_BIT = 0x200;
export const BUF_SIZE_SHIFT = 10;
export const BUF_SIZE_MASK = 0x3; // 0,1,2,3 -> 1,2,4,8 bytes; 8 bytes take two slots
export const BUF_ADDR_SHIFT = 12;
export const BUF_ADDR_MASK = 0xfffff;

// Server creation and resource mapping (hvm_op.h, memory.h).
export const HVM_IOREQSRV_BUFIOREQ_OFF = 0;
export const HVM_IOREQSRV_BUFIOREQ_LEGACY = 1;
export const HVM_IOREQSRV_BUFIOREQ_ATOMIC = 2;
export const XENMEM_RESOURCE_IOREQ_SERVER = 0;
export const XENMEM_RESOURCE_IOREQ_SERVER_FRAME_BUFIOREQ = 0;
export const XENMEM_RESOURCE_IOREQ_SERVER_FRAME_IOREQ0 = 1; // frame_ioreq(n) = 1 + n

export const PAGE_SIZE = 4096;
