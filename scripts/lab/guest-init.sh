#!/bin/busybox sh
# Stage 2 of the lab VM: PID 1 after scripts/lab/init switch_root'ed into an overlay of the host's filesystem (read
# live from the repo, so no initramfs rebuild when it changes). Runs under the host's static busybox: every exec of
# a dynamically linked host tool costs a noticeable fraction of a second under TCG.
#
# It loads the modules the job names from the guest kernel's own tree, runs the job's command with the repo as
# working directory, reports its exit status and powers off. Channels (see src/lab/runner.ts): the command's
# stdout+stderr go to the virtio port vipguard.out, our status lines ("msg …", "modules …", "start …", "exit N") to
# vipguard.ctl, kernel messages to the serial console. Keeping them apart makes the exit status immune to console
# noise.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ctl="$VIPGUARD_LAB_CTL"
say() { echo "$*" >"$ctl"; }
finish() {
  sync
  busybox poweroff -f
  # poweroff -f does not return; if it ever does, PID 1 exiting panics the kernel and panic=-1 + -no-reboot stops qemu.
  exit 1
}
trap finish EXIT

# job.sh (written by src/lab/runner.ts, POSIX sh) sets LAB_MODULES, LAB_CWD and the command as "$@".
. "$VIPGUARD_LAB_JOB/job.sh" || { say "msg reading $VIPGUARD_LAB_JOB/job.sh failed"; exit 1; }

# One modprobe for all: each exec of the host's kmod over 9p costs ~0.1 s under TCG. Then ask the kernel what loaded
# (/sys/module/NAME exists for loaded modules and for built-ins with parameters); retry the rest one by one to
# tell built-in from missing.
modprobe -a -q $LAB_MODULES 2>/dev/null
loaded="" failed=""
for m in $LAB_MODULES; do
  if [ -d "/sys/module/$(echo "$m" | busybox tr - _)" ] || modprobe -q "$m" 2>/dev/null; then
    loaded="$loaded $m"
  else
    failed="$failed $m"
  fi
done
say "modules loaded$loaded"
say "modules failed$failed"
# Every kernel message to the serial console from here on (the boot ran at loglevel 4): the runner keeps all of
# it and shows the ones that matter — IPVS reports scheduler and connection trouble at info level.
echo 8 >/proc/sys/kernel/printk

cd "$LAB_CWD" || { say "msg no working directory $LAB_CWD"; exit 1; }

if [ "${LAB_INIT:-busybox}" = systemd ]; then
  # systemd as PID 1 (the host's), for tests of the systemd unit: booted to vipguard-lab.target, which holds only
  # the job's service; whatever the command starts (systemctl start …) pulls in its own dependencies. Runtime units
  # in /run/systemd/system (a fresh tmpfs) leave the host's configuration alone. systemd mounts its own cgroup2
  # hierarchy at /sys/fs/cgroup: stage 1's layout goes.
  umount /sys/fs/cgroup/unified /sys/fs/cgroup 2>/dev/null
  mkdir -p /run/systemd/system
  # Masked for the VM's lifetime: creating "system files and directories" walks and re-permissions the host's
  # trees through the overlay (107 s of a 6.1 boot under TCG) for a root that lives in RAM and is thrown away.
  ln -s /dev/null /run/systemd/system/systemd-tmpfiles-setup.service
  cat >/run/vipguard-lab-job.sh <<EOF
#!/bin/sh
. "$VIPGUARD_LAB_JOB/job.sh"
cd "\$LAB_CWD"
"\$@" </dev/null >"$VIPGUARD_LAB_CMD_OUT" 2>&1
echo "exit \$?" >"$ctl"
sync
systemctl poweroff --force --force
EOF
  cat >/run/systemd/system/vipguard-lab-job.service <<EOF
[Unit]
Description=the lab's job
DefaultDependencies=no
[Service]
Type=exec
ExecStart=/bin/sh /run/vipguard-lab-job.sh
EOF
  cat >/run/systemd/system/vipguard-lab.target <<EOF
[Unit]
Description=the lab's job and nothing else
Requires=vipguard-lab-job.service
AllowIsolate=yes
EOF
  read -r up _ </proc/uptime
  say "start $up"
  trap - EXIT
  exec /lib/systemd/systemd --unit=vipguard-lab.target --log-target=kmsg --show-status=false
fi

read -r up _ </proc/uptime
say "start $up"
"$@" </dev/null >"$VIPGUARD_LAB_CMD_OUT" 2>&1
rc=$?
say "exit $rc"
exit "$rc"
