/* kdcl import fashion-mnist: datasets from other formats into the kdcl dataset schema. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "data/import_fmnist.h"

static void help(void) {
  printf("usage: kdcl import fashion-mnist [--src DIR] --out-dir DIR\n\n"
         "Reads the IDX .gz files of Fashion-MNIST (Debian package dataset-fashion-mnist) and\n"
         "writes DIR/fashion-mnist-train.h5 (60000 rows) and DIR/fashion-mnist-test.h5 (10000\n"
         "rows): u8 images [N, 1, 28, 28] with scale 1/255 and the training set's mean and std,\n"
         "i32 labels (10 classes).\n\n"
         "  --src DIR        where the .gz files are (default %s)\n"
         "  --out-dir DIR    where to write the datasets (created if missing)\n"
         "  --help           this text\n",
         KD_FMNIST_DEFAULT_SRC);
}

static int import_fashion_mnist(int argc, char **argv) {
  static const struct option opts[] = {{"src", required_argument, 0, 's'},
                                       {"out-dir", required_argument, 0, 'o'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *src = KD_FMNIST_DEFAULT_SRC, *out = NULL;
  int c;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 's') src = optarg;
    else if (c == 'o') out = optarg;
    else if (c == 'h') return help(), KD_EXIT_OK;
    else return kd_cli_usage_error("import", "unknown option or missing value: '%s'",
                                   argv[optind - 1]);
  }
  if (optind < argc) return kd_cli_usage_error("import", "unexpected argument '%s'", argv[optind]);
  if (!out) return kd_cli_usage_error("import", "--out-dir DIR is required");
  kd_error err = {{0}};
  if (mkdir(out, 0755) != 0 && errno != EEXIST) {
    kd_fail(&err, "--out-dir %s: cannot create the directory (%s)", out, strerror(errno));
    return kd_cli_error(&err);
  }
  if (kd_import_fashion_mnist(src, out, &err)) return kd_cli_error(&err);
  fprintf(stderr, "kdcl: wrote %s/fashion-mnist-train.h5 and %s/fashion-mnist-test.h5\n", out,
          out);
  return KD_EXIT_OK;
}

int kd_cmd_import(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    help();
    return argc < 2 ? KD_EXIT_USAGE : KD_EXIT_OK;
  }
  if (!strcmp(argv[1], "fashion-mnist")) return import_fashion_mnist(argc - 1, argv + 1);
  return kd_cli_usage_error("import", "unknown source '%s' (known: fashion-mnist)", argv[1]);
}
