export { IdeController, installLegacyIde, type IdeControllerOptions, type IdeSaved, BMDMA_BYTES } from './controller.ts';
export { IDE_PRIMARY_CMD, IDE_PRIMARY_CTRL, IDE_PRIMARY_IRQ, IDE_SECONDARY_CMD, IDE_SECONDARY_CTRL, IDE_SECONDARY_IRQ } from './controller.ts';
export type { DriveOptions, DriveKind } from './drive.ts';
export { openIdeDrives, type IdeDriveConfig } from './drives.ts';
