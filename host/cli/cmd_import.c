/* kdcl import fashion-mnist | teacher-topk: datasets from other formats into the kdcl dataset
 * schema, and an API teacher's top-k log-probabilities (JSONL) into a dataset's /teacher. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "data/import_fmnist.h"
#include "data/paths.h"
#include "data/teacher.h"

static void help_topk(void) {
  printf("usage: kdcl import teacher-topk --jsonl FILE --data DATA.h5 [--out OUT.h5]\n"
         "                                [--teacher-id ID]\n\n"
         "Adds the top-k log-probabilities of a teacher served through an API to a dataset as\n"
         "/teacher (kind \"topk\": /teacher/topk_idx int32 [N, K], /teacher/topk_logp float32\n"
         "[N, K]). FILE has one JSON object per line (blank lines are skipped):\n\n"
         "  {\"row\": 17, \"top_logprobs\": [{\"class\": 3, \"logprob\": -0.05}, ...]}\n\n"
         "row is a row of DATA.h5 (each exactly once), class a class index in [0, C), logprob\n"
         "a natural-log probability normalised over all C classes (<= 0). K is the number of\n"
         "entries on the first line and every line must have K; entries are stored sorted by\n"
         "descending logprob. Any existing /teacher is replaced. The file is written as\n"
         "OUT.tmp and renamed, so a failure or a kill leaves DATA.h5 (and OUT) as they were.\n\n"
         "  --jsonl FILE       the API outputs\n"
         "  --data DATA.h5     the kdcl dataset the rows refer to\n"
         "  --out OUT.h5       write the dataset with its teacher here (default: update DATA.h5\n"
         "                     in place)\n"
         "  --teacher-id ID    recorded as /teacher attr teacher_id (default \"api\")\n"
         "  --help             this text\n");
}

static void help(void) {
  printf("usage: kdcl import fashion-mnist [--src DIR] --out-dir DIR\n"
         "       kdcl import teacher-topk --jsonl FILE --data DATA.h5 [--out OUT.h5]\n"
         "                                [--teacher-id ID]\n\n"
         "teacher-topk: adds an API teacher's top-k log-probabilities (JSONL) to a dataset;\n"
         "see kdcl import teacher-topk --help.\n\n"
         "fashion-mnist:\n"
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
  while ((c = kd_getopt("import", argc, argv, opts)) != -1) {
    if (c == KD_FLAG_BAD_VALUE) return KD_EXIT_USAGE;
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

static int import_teacher_topk(int argc, char **argv) {
  static const struct option opts[] = {{"jsonl", required_argument, 0, 'j'},
                                       {"data", required_argument, 0, 'd'},
                                       {"out", required_argument, 0, 'o'},
                                       {"teacher-id", required_argument, 0, 't'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *jsonl = NULL, *data = NULL, *out = NULL, *tid = "api";
  int c;
  opterr = 0;
  while ((c = kd_getopt("import", argc, argv, opts)) != -1) {
    if (c == KD_FLAG_BAD_VALUE) return KD_EXIT_USAGE;
    if (c == 'j') jsonl = optarg;
    else if (c == 'd') data = optarg;
    else if (c == 'o') out = optarg;
    else if (c == 't') tid = optarg;
    else if (c == 'h') return help_topk(), KD_EXIT_OK;
    else return kd_cli_usage_error("import", "unknown option or missing value: '%s'",
                                   argv[optind - 1]);
  }
  if (optind < argc) return kd_cli_usage_error("import", "unexpected argument '%s'", argv[optind]);
  if (!jsonl) return kd_cli_usage_error("import", "teacher-topk: --jsonl FILE is required");
  if (!data) return kd_cli_usage_error("import", "teacher-topk: --data DATA.h5 is required");
  if (!*tid || strlen(tid) > 255)
    return kd_cli_usage_error("import", "--teacher-id must be 1 to 255 bytes long");
  kd_error err = {{0}};
  /* The dataset written (OUT, or DATA in place) must not be the JSONL being read. */
  if ((out && kd_check_output_path("--out", out, &err)) ||
      kd_check_not_input(out ? "--out" : "--data", out ? out : data, 1,
                         (const char *[]){"--jsonl"}, &jsonl, &err))
    return kd_cli_error(&err);
  if (kd_import_teacher_topk_jsonl(jsonl, data, out, tid, &err)) return kd_cli_error(&err);
  fprintf(stderr, "kdcl: wrote /teacher (topk, teacher_id %s) from %s to %s\n", tid, jsonl,
          out ? out : data);
  return KD_EXIT_OK;
}

int kd_cmd_import(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    help();
    return argc < 2 ? KD_EXIT_USAGE : KD_EXIT_OK;
  }
  if (!strcmp(argv[1], "fashion-mnist")) return import_fashion_mnist(argc - 1, argv + 1);
  if (!strcmp(argv[1], "teacher-topk")) return import_teacher_topk(argc - 1, argv + 1);
  return kd_cli_usage_error("import", "unknown source '%s' (known: fashion-mnist, teacher-topk)",
                            argv[1]);
}
