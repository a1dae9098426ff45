/* kdcl compile-kernels --out FILE: the FPGA-style flow on any device. The program binary built
 * for the selected device is written to FILE, and --kernels-binary FILE runs from it later
 * without compiling source. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "runtime/device.h"

static void help(void) {
  printf("usage: kdcl compile-kernels --out FILE [--device SEL]\n\n"
         "Builds kdcl's kernel program for one device and writes its binary to FILE. Other\n"
         "commands load it with --kernels-binary FILE instead of compiling source (the way FPGA\n"
         "runtimes work: there the binary comes from the vendor's offline compiler).\n\n"
         "  --out FILE      where to write the binary (required)\n"
         "  --device SEL    index, cpu|gpu|accelerator, or name substring (default: env\n"
         "                  KDCL_DEVICE, else device 0 of 'kdcl devices')\n"
         "  --help          this text\n");
}

int kd_cmd_compile_kernels(int argc, char **argv) {
  static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                       {"device", required_argument, 0, 'd'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *out = NULL, *device = NULL;
  int c;
  opterr = 0;
  while ((c = kd_getopt("compile-kernels", argc, argv, opts)) != -1) {
    if (c == KD_FLAG_BAD_VALUE) return KD_EXIT_USAGE;
    if (c == 'o') out = optarg;
    else if (c == 'd') device = optarg;
    else if (c == 'h') return help(), KD_EXIT_OK;
    else return kd_cli_usage_error("compile-kernels", "unknown or incomplete option '%s'",
                                   argv[optind - 1]);
  }
  if (!out) return kd_cli_usage_error("compile-kernels", "--out FILE is required");
  kd_error err = {{0}};
  kd_device dev;
  if (kd_device_open(&dev, device, NULL, 0, &err)) return kd_cli_error(&err);
  int rc = kd_device_save_binary(&dev, out, &err);
  if (rc == 0)
    fprintf(stderr, "kdcl: wrote the kernel binary for '%s' to %s\n", dev.info.name, out);
  kd_device_close(&dev);
  return rc ? kd_cli_error(&err) : KD_EXIT_OK;
}
