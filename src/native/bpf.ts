// Typed face of the addon's BpfObject (native/src/bpf_object.cc).
import { addon } from './addon';

export interface ProgramInfo {
  name: string;
  section: string;
  type: string;
  autoload: boolean;
  attached: boolean;
}

export interface MapInfo {
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

/** Errors from libbpf carry errno and the tail of libbpf's own log (verifier output, attach diagnostics). */
export interface LibbpfError extends Error {
  errno?: number;
  code?: string;
  log?: string;
  logTail?: string;
}

export interface BpfObject {
  programs(): ProgramInfo[];
  maps(): MapInfo[];
  /** Before load: skip loading a program whose hook the kernel lacks. */
  setAutoload(program: string, autoload: boolean): void;
  /** Before load: write a global (const volatile) variable by name; value must have the variable's size. */
  setGlobal(name: string, value: Buffer): void;
  setMapMaxEntries(map: string, maxEntries: number): void;
  /** After load: a .data/.bss global as the kernel has it now. */
  readGlobal(name: string): Buffer;
  load(): void;
  /** `symbols`: the kernel functions a kprobe.multi program attaches to, resolved by the kernel (no /proc/kallsyms). */
  attach(program: string, options?: { cgroup?: string; symbols?: string[] }): void;
  detach(program: string): boolean;
  mapUpdate(map: string, key: Buffer, value: Buffer, flags?: number): void;
  mapLookup(map: string, key: Buffer): Buffer | null;
  mapDelete(map: string, key: Buffer): boolean;
  mapKeys(map: string): Buffer[];
  /** Per-CPU array of u64: sums over CPUs of entries 0..count-1. */
  percpuSums(map: string, count: number): bigint[];
  /** Watch a ring buffer on the event loop; onBatch receives [u32 LE length][record]… */
  openRingBuffer(map: string, onBatch: (batch: Buffer) => void): number;
  /** Drain all ring buffers now; returns the number of records delivered. */
  consumeRingBuffer(): number;
  /** Detach every link, free ring buffers and maps. Idempotent. */
  close(): void;
}

interface Native {
  BpfObject: new (path: string) => BpfObject;
}

export function openBpfObject(path: string): BpfObject {
  return new (addon<Native>().BpfObject)(path);
}

/** Each record of a batch as (offset, length), without a view object per record. */
export function forEachRecord(batch: Buffer, fn: (at: number, len: number) => void): void {
  let off = 0;
  while (off + 4 <= batch.length) {
    const len = batch.readUInt32LE(off);
    off += 4;
    if (off + len > batch.length) throw new Error(`ring buffer batch truncated at offset ${off}: record of ${len} bytes`);
    fn(off, len);
    off += len;
  }
}

