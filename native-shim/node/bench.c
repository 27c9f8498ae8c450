/*
 * For `daxvm bench`: sum a buffer as little-endian uint64 words with
 * wraparound (the paper's "sum the contents in 8-byte words"). In C so the
 * sum costs the same, and little, on every variant: what the benchmarks
 * compare is how the bytes get into the process, not a JS loop.
 */
#include <node_api.h>
#include <stdint.h>
#include <string.h>

#include "glue.h"

/* The loop the compiler vectorizes; memcpy keeps unaligned words legal. */
static uint64_t sum_words(const unsigned char *p, size_t len)
{
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 32 <= len; i += 32) {
    uint64_t w[4];
    memcpy(w, p + i, sizeof w);
    s0 += w[0], s1 += w[1], s2 += w[2], s3 += w[3];
  }
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    s0 += w;
  }
  if (i < len) { /* a last partial word, zero-padded */
    uint64_t w = 0;
    memcpy(&w, p + i, len - i);
    s0 += w;
  }
  return s0 + s1 + s2 + s3;
}

/* sum64(view: TypedArray | DataView | ArrayBuffer, length?) -> bigint */
static napi_value js_sum64(napi_env env, napi_callback_info info)
{
  size_t argc = 2;
  napi_value argv[2], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return type_error(env, "daxvm_shim: sum64 needs a buffer");
  void *data = NULL;
  size_t len = 0;
  bool is;
  CHECK(napi_is_typedarray(env, argv[0], &is));
  if (is) {
    napi_typedarray_type type;
    size_t count;
    CHECK(napi_get_typedarray_info(env, argv[0], &type, &count, &data, NULL, NULL));
    size_t unit = 1;
    switch (type) {
    case napi_int16_array: case napi_uint16_array: unit = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: unit = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: unit = 8; break;
    default: break;
    }
    len = count * unit;
  } else {
    CHECK(napi_is_arraybuffer(env, argv[0], &is));
    if (!is) return type_error(env, "daxvm_shim: sum64 takes a Buffer, TypedArray or ArrayBuffer");
    CHECK(napi_get_arraybuffer_info(env, argv[0], &data, &len));
  }
  if (argc >= 2) {
    napi_valuetype t;
    CHECK(napi_typeof(env, argv[1], &t));
    if (t != napi_undefined) {
      uint64_t want;
      if (!get_u64(env, argv[1], "length", &want)) return NULL;
      if (want > len) {
        napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "daxvm_shim: sum64 length past the buffer's end");
        return NULL;
      }
      len = (size_t)want;
    }
  }
  CHECK(napi_create_bigint_uint64(env, data ? sum_words(data, len) : 0, &out));
  return out;
}

napi_status bench_init(napi_env env, napi_value exports)
{
  const napi_property_descriptor fns[] = {
      {"sum64", NULL, js_sum64, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
