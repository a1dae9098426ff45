/* kdcl export: a checkpoint's /model tensors in another tool's format (safetensors). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "data/checkpoint.h"
#include "data/paths.h"
#include "data/safetensors.h"
#include "train/state_dict.h"

static void help(void) {
  printf("usage: kdcl export --checkpoint CKPT.h5 --out FILE [--format safetensors]\n\n"
         "Writes the checkpoint's /model tensors, with the same names, to FILE (atomically):\n"
         "float32 tensors as F32, integer ones (num_batches_tracked) as I64. The metadata holds\n"
         "format = \"kdcl\", model_config (the model spec JSON) and train_config. For ONNX, see\n"
         "scripts/kdcl_onnx.py.\n\n"
         "  --checkpoint CKPT.h5     checkpoint written by kdcl train or distill\n"
         "  --out FILE               where to write (not the checkpoint itself)\n"
         "  --format safetensors     output format (default and only one: safetensors)\n"
         "  --no-file-locking        no HDF5 file locks (NFS; default: locking on)\n"
         "  --help                   this text\n");
}

int kd_cmd_export(int argc, char **argv) {
  enum { O_CKPT = 256, O_OUT, O_FORMAT, O_HELP };
  static const struct option opts[] = {{"checkpoint", required_argument, 0, O_CKPT},
                                       {"out", required_argument, 0, O_OUT},
                                       {"format", required_argument, 0, O_FORMAT},
                                       {"help", no_argument, 0, O_HELP},
                                       {0, 0, 0, 0}};
  const char *checkpoint = NULL, *out = NULL;
  int c;
  opterr = 0;
  while ((c = kd_getopt("export", argc, argv, opts)) != -1) {
    if (c == KD_FLAG_BAD_VALUE) return KD_EXIT_USAGE;
    switch (c) {
      case O_CKPT: checkpoint = optarg; break;
      case O_OUT: out = optarg; break;
      case O_FORMAT:
        if (strcmp(optarg, "safetensors"))
          return kd_cli_usage_error(
              "export", "--format expects safetensors, got '%s' (ONNX: scripts/kdcl_onnx.py)",
              optarg);
        break;
      case O_HELP: help(); return KD_EXIT_OK;
      default:
        return kd_cli_usage_error("export", "unknown option or missing value: '%s'",
                                  argv[optind - 1]);
    }
  }
  if (optind < argc) return kd_cli_usage_error("export", "unexpected argument '%s'", argv[optind]);
  if (!checkpoint) return kd_cli_usage_error("export", "--checkpoint CKPT.h5 is required");
  if (!out) return kd_cli_usage_error("export", "--out FILE is required");

  kd_error err = {{0}};
  if (kd_check_output_path("--out", out, &err) ||
      kd_check_not_input("--out", out, 1, (const char *[]){"--checkpoint"},
                         (const char *[]){checkpoint}, &err))
    return kd_cli_error(&err);
  kd_checkpoint ck;
  if (kd_checkpoint_read(checkpoint, &ck, &err)) {
    kd_checkpoint_free(&ck);
    return kd_cli_error(&err);
  }
  int rc = 0;
  if (!ck.model_config)
    rc = kd_fail(&err, "%s: no /meta/model_config (the model spec a safetensors file carries)",
                 checkpoint);
  else if (ck.num_model == 0)
    rc = kd_fail(&err, "%s: /model holds no tensors", checkpoint);
  if (rc == 0) rc = kd_state_dict_check(&ck, checkpoint, &err);
  kd_safetensors_meta meta[3] = {{"format", "kdcl"}, {"model_config", ck.model_config},
                                 {"train_config", ck.train_config}};
  if (rc == 0)
    rc = kd_safetensors_write(out, ck.model, ck.num_model, meta, ck.train_config ? 3 : 2, &err);
  int n = ck.num_model;
  kd_checkpoint_free(&ck);
  if (rc) return kd_cli_error(&err);
  fprintf(stderr, "kdcl: wrote %d tensors to %s\n", n, out);
  return KD_EXIT_OK;
}
