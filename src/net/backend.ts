/**
 * Packet backends: what a NIC sends Ethernet frames to and receives them
 * from (a tap device in dom0 or in the stub domain; an in-memory pair in
 * tests). Beside src/block (disks) and src/chardev (serial lines).
 *
 * Frames are whole Ethernet frames without the FCS, at most MAX_FRAME bytes.
 * Nothing here queues without bound: a backend that cannot take a frame now
 * says so (send returns false) and calls onWritable when it can; a NIC that
 * cannot take a received frame now returns false from its receiver and the
 * backend stops reading until resumeReceive(). Frames are never reordered
 * or duplicated, and a frame refused is not consumed (it is offered again).
 */

/** Largest frame either side passes: 16 KiB jumbo frames (e1000 RCTL.LPE with BSEX). */
export const MAX_FRAME = 16384;

/**
 * Largest frame send() takes with a TCP segmentation offload (gsoSize > 0)
 * on a backend with `offloads`: an IP datagram of 65535 bytes behind an
 * Ethernet header with one VLAN tag.
 */
export const MAX_OFFLOAD_FRAME = 14 + 4 + 65535;

/** onWritable registrations a backend keeps (one per NIC queue; more is a bug and throws). */
export const MAX_WRITABLE_LISTENERS = 8;

/**
 * Offloads a NIC already resolved for a frame it sends. A backend with
 * IFF_VNET_HDR may pass them to the host kernel instead of the NIC doing
 * them in software; without that the NIC must have done them already and
 * passes null.
 */
export interface TxOffload {
  /**
   * Checksum still to insert: csumStart is where the checksummed area starts
   * (bytes from frame start), csumOffset where the 16-bit result goes, in
   * bytes from csumStart (as virtio-net's csum_offset; the guest left the
   * pseudo-header sum there). csumOffset 0: no checksum to insert.
   */
  csumStart: number;
  csumOffset: number;
  /** TCP segmentation still to do: 0 = none, else the MSS and the header length. */
  gsoSize: number;
  hdrLen: number;
  gsoType: 'none' | 'tcpv4' | 'tcpv6' | 'udp';
}

/**
 * Called for each received frame. `frame` is only valid during the call (the
 * backend reuses its buffer): copy what you keep. Return false when the frame
 * could not be taken now (RX ring full): it is kept and offered again after
 * resumeReceive().
 */
export type FrameReceiver = (frame: Uint8Array) => boolean;

export interface PacketBackend {
  /** What the operator named (the tap's ifname). */
  readonly name: string;
  /**
   * Send one frame (copied before this returns). false: the backend is full,
   * the frame was not taken; onWritable's callback runs when it may be retried.
   */
  send(frame: Uint8Array, offload: TxOffload | null): boolean;
  /** Whether send() can accept TxOffload (the host kernel finishes checksums and segmentation). */
  readonly offloads: boolean;
  /** Where received frames go (one receiver; setting another replaces it). */
  setReceiver(r: FrameReceiver): void;
  /** The NIC has room again: deliver the frame it refused, then keep reading. */
  resumeReceive(): void;
  /** `cb` runs once each time a refused send() may be retried. */
  onWritable(cb: () => void): void;
  close(): Promise<void>;
}
