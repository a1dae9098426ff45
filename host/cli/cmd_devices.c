/* kdcl devices [--json]: every OpenCL device, and whether CLBlast runs on it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "nn/gemm.h"
#include "runtime/device.h"

static void help(void) {
  printf(
      "usage: kdcl devices [--json]\n\n"
      "Lists every OpenCL device of every platform: index, platform, name, type, compute units,\n"
      "memory, OpenCL version, and whether CLBlast runs a test SGEMM on it (which builds CLBlast's\n"
      "kernels, so the first listing takes a few seconds).\n"
      "Pick a device elsewhere with --device SEL or KDCL_DEVICE=SEL: an index, cpu|gpu|accelerator,\n"
      "or a substring of the device or platform name.\n\n"
      "  --json    print one JSON object {\"devices\": [...]} on stdout (default: text)\n"
      "  --help    this text\n");
}

int kd_cmd_devices(int argc, char **argv) {
  static const struct option opts[] = {{"json", no_argument, 0, 'j'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int json = 0, c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 'j') json = 1;
    else if (c == 'h') return help(), KD_EXIT_OK;
    else return kd_cli_usage_error("devices", "unknown option '%s'", argv[optind - 1]);
  }
  if (optind < argc) return kd_cli_usage_error("devices", "unexpected argument '%s'", argv[optind]);

  kd_error err = {{0}};
  kd_device_info *list;
  int n;
  if (kd_device_list(&list, &n, &err)) return kd_cli_error(&err);
  cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "devices");
  for (int i = 0; i < n; i++) {
    char sel[16];
    snprintf(sel, sizeof sel, "%d", i);
    kd_device dev;
    kd_error probe_err = {{0}};
    int clblast = 0;
    if (kd_device_open(&dev, sel, NULL, 0, &probe_err) == 0) {
      clblast = kd_gemm_clblast_usable(&dev, &probe_err);
      kd_device_close(&dev);
    }
    const kd_device_info *d = &list[i];
    if (json) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddNumberToObject(o, "index", i);
      cJSON_AddStringToObject(o, "platform", d->platform_name);
      cJSON_AddStringToObject(o, "name", d->name);
      cJSON_AddStringToObject(o, "vendor", d->vendor);
      cJSON_AddStringToObject(o, "type", kd_device_type_name(d->type));
      cJSON_AddNumberToObject(o, "compute_units", d->compute_units);
      cJSON_AddNumberToObject(o, "global_mem_bytes", (double)d->global_mem_bytes);
      cJSON_AddNumberToObject(o, "max_alloc_bytes", (double)d->max_alloc_bytes);
      cJSON_AddStringToObject(o, "opencl_version", d->version);
      cJSON_AddStringToObject(o, "driver_version", d->driver_version);
      cJSON_AddBoolToObject(o, "clblast", clblast);
      cJSON_AddItemToArray(arr, o);
    } else {
      printf("%d: %s | %s | %s | %u compute units | %.0f MiB | %s | CLBlast %s\n", i,
             d->platform_name, d->name, kd_device_type_name(d->type), d->compute_units,
             d->global_mem_bytes / 1048576.0, d->version, clblast ? "yes" : "no");
    }
  }
  if (json) {
    char *s = cJSON_PrintUnformatted(root);
    printf("%s\n", s);
    free(s);
  }
  cJSON_Delete(root);
  free(list);
  return KD_EXIT_OK;
}
