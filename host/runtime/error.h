/* Error reporting for host code: a function that can fail returns 0 on success or -1 after
 * leaving one message in a kd_error for the caller; only the CLI prints it. */
#ifndef KD_ERROR_H
#define KD_ERROR_H

#include <CL/cl.h>

typedef struct kd_error {
  char msg[1024];
} kd_error;

/* Formats the message into err (if err is non-NULL) and returns -1, so `return kd_fail(...)`. */
int kd_fail(kd_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes an existing message with more context ("reading X: <old message>"); returns -1. */
int kd_fail_context(kd_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The symbolic name of an OpenCL status code, e.g. "CL_OUT_OF_RESOURCES". */
const char *kd_cl_errstr(cl_int code);

/* Fails (returns -1 from the enclosing function) when an OpenCL call does not return
 * CL_SUCCESS, naming the call, the status and file:line. */
#define KD_CL_CHECK(err, call)                                                             \
  do {                                                                                     \
    cl_int kd_status_ = (call);                                                            \
    if (kd_status_ != CL_SUCCESS)                                                          \
      return kd_cl_fail((err), #call, kd_status_, __FILE__, __LINE__);                     \
  } while (0)

int kd_cl_fail(kd_error *err, const char *call, cl_int status, const char *file, int line);

#endif
