/**
 * PCI IDs and class codes of the functions on our bus (pci.ids; QEMU
 * include/hw/pci/pci_ids.h uses the same numbers).
 */
export const VENDOR_INTEL = 0x8086;
export const VENDOR_XEN = 0x5853;
/**
 * QEMU gives every function without an explicit subsystem ID 1af4:1100
 * (pci_set_default_subsystem_id). Guests that ran on qemu-xen have bound
 * drivers and Windows device instances to it, so we report the same.
 */
export const QEMU_SUBSYSTEM_VENDOR = 0x1af4;
export const QEMU_SUBSYSTEM_ID = 0x1100;

export const DEVICE_I440FX = 0x1237; // 82441FX PMC
export const DEVICE_PIIX3_ISA = 0x7000; // 82371SB function 0
export const DEVICE_PIIX3_IDE = 0x7010; // 82371SB function 1
export const DEVICE_PIIX4_ACPI = 0x7113; // 82371AB function 3
export const DEVICE_XEN_PLATFORM = 0x0001;

export const CLASS_BRIDGE_HOST = 0x0600;
export const CLASS_BRIDGE_ISA = 0x0601;
export const CLASS_STORAGE_IDE = 0x0101;
export const CLASS_BRIDGE_OTHER = 0x0680;
export const CLASS_OTHERS = 0xff80;
export const CLASS_NETWORK_ETHERNET = 0x0200;
