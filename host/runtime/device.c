/* Device discovery and selection, context and queue creation. */
#include "runtime/device.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/program.h"

static void info_string(cl_device_id d, cl_device_info what, char *buf, size_t len) {
  buf[0] = '\0';
  if (clGetDeviceInfo(d, what, len, buf, NULL) != CL_SUCCESS) snprintf(buf, len, "?");
  buf[len - 1] = '\0';
}

static void fill_info(kd_device_info *info, cl_platform_id p, cl_device_id d, int index) {
  memset(info, 0, sizeof *info);
  info->index = index;
  info->platform = p;
  info->device = d;
  if (clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof info->platform_name, info->platform_name,
                        NULL) != CL_SUCCESS)
    snprintf(info->platform_name, sizeof info->platform_name, "?");
  info_string(d, CL_DEVICE_NAME, info->name, sizeof info->name);
  info_string(d, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor);
  info_string(d, CL_DEVICE_VERSION, info->version, sizeof info->version);
  info_string(d, CL_DRIVER_VERSION, info->driver_version, sizeof info->driver_version);
  clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof info->type, &info->type, NULL);
  clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof info->compute_units,
                  &info->compute_units, NULL);
  clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof info->global_mem_bytes,
                  &info->global_mem_bytes, NULL);
  clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof info->max_alloc_bytes,
                  &info->max_alloc_bytes, NULL);
  clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof info->max_work_group_size,
                  &info->max_work_group_size, NULL);
}

int kd_device_list(kd_device_info **out, int *count, kd_error *err) {
  cl_uint nplat = 0;
  *out = NULL;
  *count = 0;
  cl_int rc = clGetPlatformIDs(0, NULL, &nplat);
  if (rc == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || nplat == 0)
    return kd_fail(err, "no OpenCL platform found (is an ICD such as pocl-opencl-icd installed?)");
  KD_CL_CHECK(err, rc);
  cl_platform_id plats[16];
  if (nplat > 16) nplat = 16;
  KD_CL_CHECK(err, clGetPlatformIDs(nplat, plats, NULL));
  kd_device_info *list = NULL;
  int n = 0;
  for (cl_uint p = 0; p < nplat; p++) {
    cl_uint ndev = 0;
    if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &ndev) != CL_SUCCESS || !ndev)
      continue;
    cl_device_id devs[64];
    if (ndev > 64) ndev = 64;
    if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, ndev, devs, NULL) != CL_SUCCESS) continue;
    kd_device_info *grown = realloc(list, (size_t)(n + (int)ndev) * sizeof *list);
    if (!grown) {
      free(list);
      return kd_fail(err, "out of host memory listing devices");
    }
    list = grown;
    for (cl_uint d = 0; d < ndev; d++, n++) fill_info(&list[n], plats[p], devs[d], n);
  }
  if (n == 0) {
    free(list);
    return kd_fail(err, "OpenCL platforms found, but no devices");
  }
  *out = list;
  *count = n;
  return 0;
}

const char *kd_device_type_name(cl_device_type type) {
  if (type & CL_DEVICE_TYPE_GPU) return "gpu";
  if (type & CL_DEVICE_TYPE_CPU) return "cpu";
  if (type & CL_DEVICE_TYPE_ACCELERATOR) return "accelerator";
  return "other";
}

static int contains_nocase(const char *hay, const char *needle) {
  size_t hn = strlen(hay), nn = strlen(needle);
  for (size_t i = 0; i + nn <= hn; i++) {
    size_t j = 0;
    while (j < nn && tolower((unsigned char)hay[i + j]) == tolower((unsigned char)needle[j])) j++;
    if (j == nn) return 1;
  }
  return 0;
}

int kd_device_select(const char *selector, kd_device_info *out, kd_error *err) {
  if (!selector || !*selector) selector = getenv("KDCL_DEVICE");
  kd_device_info *list;
  int n;
  if (kd_device_list(&list, &n, err)) return -1;
  int pick = -1;
  if (!selector || !*selector) {
    pick = 0;
  } else {
    char *end;
    long idx = strtol(selector, &end, 10);
    if (*end == '\0') {
      if (idx >= 0 && idx < n) pick = (int)idx;
    } else if (!strcmp(selector, "cpu") || !strcmp(selector, "gpu") ||
               !strcmp(selector, "accelerator")) {
      for (int i = 0; i < n && pick < 0; i++)
        if (!strcmp(kd_device_type_name(list[i].type), selector)) pick = i;
    } else {
      for (int i = 0; i < n && pick < 0; i++)
        if (contains_nocase(list[i].name, selector) ||
            contains_nocase(list[i].platform_name, selector))
          pick = i;
    }
  }
  if (pick < 0) {
    char names[512] = "";
    size_t used = 0;
    for (int i = 0; i < n && used < sizeof names - 1; i++)
      used += (size_t)snprintf(names + used, sizeof names - used, "%s%d: %s (%s)",
                               i ? ", " : "", i, list[i].name,
                               kd_device_type_name(list[i].type));
    free(list);
    return kd_fail(err, "--device '%s' matches no OpenCL device; available: %s", selector,
                   names);
  }
  *out = list[pick];
  free(list);
  return 0;
}

int kd_device_open(kd_device *dev, const char *selector, const char *kernels_binary,
                   int profiling, kd_error *err) {
  memset(dev, 0, sizeof *dev);
  if (kd_device_select(selector, &dev->info, err)) return -1;
  cl_int rc;
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)dev->info.platform,
                                   0};
  dev->context = clCreateContext(props, 1, &dev->info.device, NULL, NULL, &rc);
  KD_CL_CHECK(err, rc);
  dev->profiling = profiling;
  dev->gemm_backend = kernels_binary ? KD_GEMM_BUILTIN : KD_GEMM_AUTO;
  dev->queue = clCreateCommandQueue(dev->context, dev->info.device,
                                    profiling ? CL_QUEUE_PROFILING_ENABLE : 0, &rc);
  if (rc != CL_SUCCESS) {
    clReleaseContext(dev->context);
    dev->context = NULL;
    return kd_cl_fail(err, "clCreateCommandQueue", rc, __FILE__, __LINE__);
  }
  if (kd_program_build(dev, kernels_binary, err)) {
    kd_device_close(dev);
    return -1;
  }
  return 0;
}

void kd_device_close(kd_device *dev) {
  if (dev->gemm_state && dev->gemm_state_free) dev->gemm_state_free(dev->gemm_state);
  for (int i = 0; i < dev->num_kernels; i++) clReleaseKernel(dev->kernels[i].kernel);
  free(dev->kernels);
  if (dev->program) clReleaseProgram(dev->program);
  if (dev->queue) clReleaseCommandQueue(dev->queue);
  if (dev->context) clReleaseContext(dev->context);
  memset(dev, 0, sizeof *dev);
}

int kd_device_finish(kd_device *dev, kd_error *err) {
  KD_CL_CHECK(err, clFinish(dev->queue));
  return 0;
}
