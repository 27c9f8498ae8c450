{
  "targets": [
    {
      "target_name": "daxvm_shim",
      "sources": [
        "native-shim/core/sys.c", "native-shim/core/vm.c", "native-shim/core/process.c", "native-shim/core/span.c", "native-shim/core/lease.c",
        "native-shim/node/glue.c", "native-shim/node/addon.c", "native-shim/node/lib.c", "native-shim/node/bench.c", "native-shim/node/fallocate.c"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    },
    {
      "target_name": "daxvm_fuse",
      "sources": ["native-shim/fuse/session.c", "native-shim/fuse/ops.c", "native-shim/fuse/reply.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)"]
    }
  ]
}
