{
  "targets": [
    {
      # One small addon: libbpf object lifecycle + ring buffer on libuv (bpf_object.cc), a netlink socket for
      # the IPVS generic netlink family (netlink.cc), clock readings for kernel-time conversion (clock.cc), and
      # systemd's readiness datagram (notify.cc).
      # Everything else (event decoding, netlink message codec) is TypeScript.
      "target_name": "vipguard_native",
      "sources": ["src/addon.cc", "src/bpf_object.cc", "src/netlink.cc", "src/clock.cc", "src/notify.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "../bpf"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "libraries": ["<!@(pkg-config --libs libbpf)"],
      "cflags": ["<!@(pkg-config --cflags libbpf)"]
    }
  ]
}
