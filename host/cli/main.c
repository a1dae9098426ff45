/* kdcl: knowledge-distillation training on OpenCL. main only dispatches to a subcommand. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <hdf5.h>

#include "cli/cli.h"
#include "data/h5util.h"

typedef struct kd_command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} kd_command;

static const kd_command commands[] = {
    {"train", kd_cmd_train, "train a model on labelled HDF5 data"},
    {"distill", kd_cmd_distill, "train a student from a teacher's outputs and the labels"},
    {"label", kd_cmd_label, "write a teacher checkpoint's outputs into a dataset's /teacher"},
    {"eval", kd_cmd_eval, "accuracy and loss of a checkpoint on a dataset"},
    {"predict", kd_cmd_predict, "write a checkpoint's logits for a dataset"},
    {"export", kd_cmd_export, "write a checkpoint's model tensors as safetensors"},
    {"import", kd_cmd_import, "import fashion-mnist, or an API's top-k teacher outputs (teacher-topk)"},
    {"devices", kd_cmd_devices, "list OpenCL devices and whether CLBlast runs on them"},
    {"compile-kernels", kd_cmd_compile_kernels,
     "write the kernel program binary for a device (for --kernels-binary)"},
    {"inspect", kd_cmd_inspect,
     "describe a kdcl HDF5 file (dataset, checkpoint, logits) or any HDF5 file"},
    {"bench", kd_cmd_bench, "GEMM throughput, or a training step's speed and profile (gemm|step)"},
};

int kd_cli_error(const kd_error *err) {
  fprintf(stderr, "kdcl: error: %s\n", err->msg);
  return KD_EXIT_ERROR;
}

/* Where the option being parsed came from when not the command line (a recipe file). */
static const char *usage_context;

void kd_cli_set_context(const char *context) { usage_context = context; }

int kd_cli_usage_error(const char *command, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "kdcl: error: %s%s%s (see 'kdcl %s --help')\n", usage_context ? usage_context : "",
          usage_context ? ": " : "", msg, command);
  return KD_EXIT_USAGE;
}

/* kdcl's version, the libraries it was built with, and the OpenCL platforms it finds. */
static void print_version(void) {
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  printf("kdcl %s (CLBlast %s, HDF5 %u.%u.%u, OpenCL host API 1.2)\n", KDCL_VERSION,
         KDCL_CLBLAST_VERSION, maj, min, rel);
  cl_platform_id plats[16];
  cl_uint n = 0;
  if (clGetPlatformIDs(16, plats, &n) != CL_SUCCESS) n = 0;
  for (cl_uint i = 0; i < n && i < 16; i++) {
    char name[256] = "?", version[256] = "?";
    clGetPlatformInfo(plats[i], CL_PLATFORM_NAME, sizeof name, name, NULL);
    clGetPlatformInfo(plats[i], CL_PLATFORM_VERSION, sizeof version, version, NULL);
    printf("OpenCL platform %u: %s (%s)\n", i, name, version);
  }
  if (n == 0) printf("OpenCL platform: none found\n");
}

static void usage(FILE *out) {
  fprintf(out,
          "kdcl %s: knowledge-distillation training on OpenCL\n\n"
          "usage: kdcl COMMAND [options]   (kdcl COMMAND --help for its options)\n"
          "       kdcl --version\n\n"
          "commands:\n",
          KDCL_VERSION);
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(out, "  %-16s %s\n", commands[i].name, commands[i].summary);
  fprintf(out,
          "\nevery command that opens HDF5 files also takes --no-file-locking: for file systems\n"
          "without locks (NFS); the same as HDF5_USE_FILE_LOCKING=FALSE\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return KD_EXIT_USAGE;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return KD_EXIT_OK;
  }
  if (!strcmp(argv[1], "--version")) {
    print_version();
    return KD_EXIT_OK;
  }
  /* --no-file-locking belongs to every command that opens HDF5 files: it is taken out of argv
   * here and sets the one process-wide setting of data/h5util's file access lists. */
  int kept = 2;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--")) {
      while (i < argc) argv[kept++] = argv[i++];
      break;
    }
    if (!strcmp(argv[i], "--no-file-locking"))
      kd_h5_set_file_locking(0);
    else
      argv[kept++] = argv[i];
  }
  argc = kept;
  argv[argc] = NULL;
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "kdcl: error: unknown command '%s' (see 'kdcl --help')\n", argv[1]);
  return KD_EXIT_USAGE;
}
