{
  "targets": [
    {
      "target_name": "daxvm_shim",
      "sources": [
        "native-shim/core/sys.c", "native-shim/core/vm.c", "native-shim/core/process.c", "native-shim/core/span.c", "native-shim/core/lease.c", "native-shim/core/ns.c", "native-shim/core/ns_perm.c", "native-shim/core/ns_host.c", "native-shim/core/ns_mounts.c",
        "native-shim/core/table.c",
        "native-shim/node/glue.c", "native-shim/node/addon.c", "native-shim/node/lib.c", "native-shim/node/leases.c", "native-shim/node/bench.c", "native-shim/node/fallocate.c", "native-shim/node/ns_glue.c",
        "native-shim/node/attach.c", "native-shim/node/records.c", "native-shim/node/ns_attach.c", "native-shim/node/quiet.cc"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc": ["-Wall", "-Wextra", "-Wno-unused-parameter"]
    },
    {
      "target_name": "daxvm_fuse",
      "sources": ["native-shim/fuse/session.c", "native-shim/fuse/ops.c", "native-shim/fuse/reply.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)"]
        },
    {
      "target_name": "daxvm_preload_core",
      "type": "static_library",
      "sources": [
        "native-shim/core/sys.c", "native-shim/core/vm.c", "native-shim/core/process.c", "native-shim/core/span.c",
        "native-shim/core/lease.c", "native-shim/core/table.c", "native-shim/core/ns.c", "native-shim/core/ns_perm.c", "native-shim/core/ns_host.c", "native-shim/core/ns_mounts.c"
      ],
      "defines": ["mmap=dvm_real_mmap", "munmap=dvm_real_munmap", "msync=dvm_real_msync", "mprotect=dvm_real_mprotect", "mremap=dvm_real_mremap"],
      "cflags": ["-fPIC", "-fvisibility=hidden", "-U_FILE_OFFSET_BITS"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    },
    {
      "target_name": "daxvm-preload",
      "type": "shared_library",
      "product_prefix": "lib",
      "dependencies": ["daxvm_preload_core"],
      "sources": [
        "native-shim/preload/real.c", "native-shim/preload/mounts.c", "native-shim/preload/tables.c", "native-shim/preload/mapping.c", "native-shim/preload/interpose.c"
      ],
      "cflags": ["-fvisibility=hidden", "-U_FILE_OFFSET_BITS"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "ldflags": ["-pthread", "-Wl,-z,defs"]
    }
  ]
}
