// Kernel features, read without privilege and without tracefs: mostly from the running kernel's own BTF
// (/sys/kernel/btf/vmlinux, world-readable), where a name is when the kernel was built with the code that declares it.
import * as fs from 'node:fs';

/** Answers already read: the BTF itself (several MB) is not kept, it would stay resident for the process's life. */
const answers = new Map<string, boolean | undefined>();

/** Whether the kernel's BTF holds `name` as a whole string (a type, function or enum value name); undefined without BTF. */
export function kernelBtfHas(name: string): boolean | undefined {
  if (!answers.has(name)) {
    let btf: Buffer | undefined;
    try {
      btf = fs.readFileSync('/sys/kernel/btf/vmlinux');
    } catch {
      btf = undefined;
    }
    answers.set(name, btf ? btf.includes(`\0${name}\0`) : undefined);
  }
  return answers.get(name);
}

/**
 * Whether this kernel can attach kprobe.multi links (BPF_LINK_TYPE_KPROBE_MULTI, 5.18+): only when built with
 * CONFIG_FPROBE — `struct bpf_kprobe_multi_link` (kernel/trace/bpf_trace.c) exists only then. Debian 6.12 has it;
 * Debian 12's 6.1 is built without CONFIG_FPROBE and 5.10 predates it (test/lab/receiver.test.ts checks both).
 */
export function kprobeMultiAvailable(): boolean {
  return kernelBtfHas('bpf_kprobe_multi_link') === true;
}

/** sock:inet_sk_error_report (5.14+, "net: sock: introduce sk_error_report"): tp_btf finds it by its btf_trace_ typedef. */
export function hasErrorReportTracepoint(): boolean {
  return kernelBtfHas('btf_trace_inet_sk_error_report') === true;
}

/** The kprobe PMU (CONFIG_KPROBE_EVENTS): the BPF kprobe program type, and the classic kprobe's perf event. */
export function kernelHasKprobes(): boolean {
  return fs.existsSync('/sys/bus/event_source/devices/kprobe');
}
