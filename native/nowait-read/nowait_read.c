/*
 * readNowait(fd, target, offset, length, position): one preadv2(..., RWF_NOWAIT) into
 * target[offset, offset + length) at file position `position`, on the calling thread.
 *
 * Returns the bytes read (0 at the end of the file; fewer than asked when only a part was in the
 * page cache), or minus the errno: -EAGAIN when nothing could be read without waiting for the
 * disk. Node's fs exposes no RWF_NOWAIT, and a blocking read on the event loop's thread would
 * stall every connection for a disk's latency; this one never waits, so a page-cache hit costs
 * one system call instead of a thread-pool round trip (docs/performance.md, "Reads").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <sys/uio.h>
#include <node_api.h>

static napi_value fail(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

static napi_value read_nowait(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5)
    return fail(env, "readNowait(fd, target, offset, length, position) takes 5 arguments");

  int32_t fd;
  uint32_t offset, length;
  int64_t position;
  bool is_typed_array = false;
  napi_typedarray_type type;
  size_t element_count, byte_offset;
  void *data;
  napi_value array_buffer;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return fail(env, "fd must be a descriptor");
  if (napi_is_typedarray(env, argv[1], &is_typed_array) != napi_ok || !is_typed_array) return fail(env, "target must be a Uint8Array");
  if (napi_get_typedarray_info(env, argv[1], &type, &element_count, &data, &array_buffer, &byte_offset) != napi_ok ||
      type != napi_uint8_array)
    return fail(env, "target must be a Uint8Array");
  if (napi_get_value_uint32(env, argv[2], &offset) != napi_ok || napi_get_value_uint32(env, argv[3], &length) != napi_ok)
    return fail(env, "offset and length must be unsigned integers");
  if (napi_get_value_int64(env, argv[4], &position) != napi_ok || position < 0) return fail(env, "position must be a non-negative integer");
  if ((size_t)offset + (size_t)length > element_count) {
    napi_throw_range_error(env, NULL, "offset + length is past the end of target");
    return NULL;
  }

  struct iovec piece = {(char *)data + offset, length};
  ssize_t bytes_read;
  do {
    bytes_read = preadv2(fd, &piece, 1, (off_t)position, RWF_NOWAIT);
  } while (bytes_read < 0 && errno == EINTR);

  napi_value result;
  napi_create_double(env, bytes_read >= 0 ? (double)bytes_read : -(double)errno, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value function;
  napi_create_function(env, "readNowait", NAPI_AUTO_LENGTH, read_nowait, NULL, &function);
  napi_set_named_property(env, exports, "readNowait", function);
  return exports;
}
