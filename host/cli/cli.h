/* Shared pieces of the subcommands: error printing and exit codes. */
#ifndef KD_CLI_H
#define KD_CLI_H

#include "runtime/error.h"

#define KD_EXIT_OK 0
#define KD_EXIT_ERROR 1
#define KD_EXIT_USAGE 2
#define KD_EXIT_DIVERGED 3

/* Prints "kdcl: error: <msg>" on one line of stderr and returns KD_EXIT_ERROR. */
int kd_cli_error(const kd_error *err);
/* Prints "kdcl: error: <fmt...>" plus a hint to run --help; returns KD_EXIT_USAGE. */
int kd_cli_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Until cleared with NULL, usage errors start "kdcl: error: <context>: ..." (e.g. "--config
 * R.json" while parsing the options a recipe supplied). */
void kd_cli_set_context(const char *context);

/* The --help lines of the device options that every command running kernels takes. */
#define KD_CLI_HELP_DEVICE_OPTIONS                                                             \
  "  --device SEL             index, cpu|gpu|accelerator, or name substring (default: env\n"   \
  "                           KDCL_DEVICE, else device 0 of 'kdcl devices')\n"                 \
  "  --gemm auto|clblast|builtin  GEMM back end (default auto: each shape on the faster one,\n" \
  "                           measured once per device and cached; builtin with\n"            \
  "                           --kernels-binary)\n"                                            \
  "  --kernels-binary FILE    run kernels from a binary written by 'kdcl compile-kernels'\n"  \
  "                           (default: build from source, cached per device)\n"

int kd_cmd_train(int argc, char **argv);
int kd_cmd_distill(int argc, char **argv);
int kd_cmd_label(int argc, char **argv);
int kd_cmd_eval(int argc, char **argv);
int kd_cmd_predict(int argc, char **argv);
int kd_cmd_export(int argc, char **argv);
int kd_cmd_import(int argc, char **argv);
int kd_cmd_devices(int argc, char **argv);
int kd_cmd_compile_kernels(int argc, char **argv);
int kd_cmd_inspect(int argc, char **argv);
int kd_cmd_bench(int argc, char **argv);

#endif
