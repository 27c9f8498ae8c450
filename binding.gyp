{
  "targets": [
    {
      "target_name": "daxvm_shim",
      "sources": ["native-shim/core.c", "native-shim/vm.c", "native-shim/process.c", "native-shim/shim.c", "native-shim/lib.c", "native-shim/bench.c", "native-shim/fallocate.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
