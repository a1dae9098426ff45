/* Error messages: formatting, context prefixes and OpenCL status names. */
#include "runtime/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int kd_fail(kd_error *err, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return -1;
}

int kd_fail_context(kd_error *err, const char *fmt, ...) {
  if (err) {
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Truncation is acceptable: the start of the message carries the context. */
    int n = snprintf(err->msg, sizeof err->msg, "%s: ", prefix);
    if (n > 0 && (size_t)n < sizeof err->msg)
      snprintf(err->msg + n, sizeof err->msg - (size_t)n, "%.*s", (int)(sizeof err->msg) - n - 1, old);
  }
  return -1;
}

int kd_cl_fail(kd_error *err, const char *call, cl_int status, const char *file, int line) {
  size_t name_len = strcspn(call, "(");
  return kd_fail(err, "OpenCL %.*s failed with %s (%s:%d)", (int)name_len, call,
                 kd_cl_errstr(status), file, line);
}

const char *kd_cl_errstr(cl_int code) {
  switch (code) {
#define KD_CASE(x) \
  case x:          \
    return #x;
    KD_CASE(CL_SUCCESS)
    KD_CASE(CL_DEVICE_NOT_FOUND)
    KD_CASE(CL_DEVICE_NOT_AVAILABLE)
    KD_CASE(CL_COMPILER_NOT_AVAILABLE)
    KD_CASE(CL_MEM_OBJECT_ALLOCATION_FAILURE)
    KD_CASE(CL_OUT_OF_RESOURCES)
    KD_CASE(CL_OUT_OF_HOST_MEMORY)
    KD_CASE(CL_PROFILING_INFO_NOT_AVAILABLE)
    KD_CASE(CL_MEM_COPY_OVERLAP)
    KD_CASE(CL_IMAGE_FORMAT_MISMATCH)
    KD_CASE(CL_IMAGE_FORMAT_NOT_SUPPORTED)
    KD_CASE(CL_BUILD_PROGRAM_FAILURE)
    KD_CASE(CL_MAP_FAILURE)
    KD_CASE(CL_MISALIGNED_SUB_BUFFER_OFFSET)
    KD_CASE(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
    KD_CASE(CL_COMPILE_PROGRAM_FAILURE)
    KD_CASE(CL_LINKER_NOT_AVAILABLE)
    KD_CASE(CL_LINK_PROGRAM_FAILURE)
    KD_CASE(CL_DEVICE_PARTITION_FAILED)
    KD_CASE(CL_KERNEL_ARG_INFO_NOT_AVAILABLE)
    KD_CASE(CL_INVALID_VALUE)
    KD_CASE(CL_INVALID_DEVICE_TYPE)
    KD_CASE(CL_INVALID_PLATFORM)
    KD_CASE(CL_INVALID_DEVICE)
    KD_CASE(CL_INVALID_CONTEXT)
    KD_CASE(CL_INVALID_QUEUE_PROPERTIES)
    KD_CASE(CL_INVALID_COMMAND_QUEUE)
    KD_CASE(CL_INVALID_HOST_PTR)
    KD_CASE(CL_INVALID_MEM_OBJECT)
    KD_CASE(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR)
    KD_CASE(CL_INVALID_IMAGE_SIZE)
    KD_CASE(CL_INVALID_SAMPLER)
    KD_CASE(CL_INVALID_BINARY)
    KD_CASE(CL_INVALID_BUILD_OPTIONS)
    KD_CASE(CL_INVALID_PROGRAM)
    KD_CASE(CL_INVALID_PROGRAM_EXECUTABLE)
    KD_CASE(CL_INVALID_KERNEL_NAME)
    KD_CASE(CL_INVALID_KERNEL_DEFINITION)
    KD_CASE(CL_INVALID_KERNEL)
    KD_CASE(CL_INVALID_ARG_INDEX)
    KD_CASE(CL_INVALID_ARG_VALUE)
    KD_CASE(CL_INVALID_ARG_SIZE)
    KD_CASE(CL_INVALID_KERNEL_ARGS)
    KD_CASE(CL_INVALID_WORK_DIMENSION)
    KD_CASE(CL_INVALID_WORK_GROUP_SIZE)
    KD_CASE(CL_INVALID_WORK_ITEM_SIZE)
    KD_CASE(CL_INVALID_GLOBAL_OFFSET)
    KD_CASE(CL_INVALID_EVENT_WAIT_LIST)
    KD_CASE(CL_INVALID_EVENT)
    KD_CASE(CL_INVALID_OPERATION)
    KD_CASE(CL_INVALID_GL_OBJECT)
    KD_CASE(CL_INVALID_BUFFER_SIZE)
    KD_CASE(CL_INVALID_MIP_LEVEL)
    KD_CASE(CL_INVALID_GLOBAL_WORK_SIZE)
    KD_CASE(CL_INVALID_PROPERTY)
    KD_CASE(CL_INVALID_IMAGE_DESCRIPTOR)
    KD_CASE(CL_INVALID_COMPILER_OPTIONS)
    KD_CASE(CL_INVALID_LINKER_OPTIONS)
    KD_CASE(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef KD_CASE
    default:
      return "unknown OpenCL status";
  }
}
