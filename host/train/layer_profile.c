/* Per-layer timing and achieved GFLOP/s for --profile. */
#include "train/layer_profile.h"

#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

double kd_layer_profile_start(kd_device *dev) {
  clFinish(dev->queue);
  return now_ms();
}

double kd_layer_profile_stop(kd_device *dev, double start) {
  clFinish(dev->queue);
  return now_ms() - start;
}

double kd_layer_flops(const kd_layer *L, size_t n, int backward, int need_dx) {
  double macs = 0;
  if (L->type == KD_LAYER_DENSE) macs = (double)n * (double)L->in_size * (double)L->out_size;
  if (L->type == KD_LAYER_CONV2D)
    macs = (double)n * (double)L->out_size * (double)L->in_shape[0] * (double)(L->kh * L->kw);
  return 2 * macs * (backward ? (need_dx ? 2 : 1) : 1);
}

static const char *type_name(const kd_layer *L) {
  switch (L->type) {
    case KD_LAYER_FLATTEN: return "flatten";
    case KD_LAYER_DENSE: return "dense";
    case KD_LAYER_ACTIVATION: return kd_activation_name(L->act);
    case KD_LAYER_DROPOUT: return "dropout";
    case KD_LAYER_CONV2D: return "conv2d";
    case KD_LAYER_MAXPOOL2D: return "maxpool2d";
    case KD_LAYER_AVGPOOL2D: return "avgpool2d";
    case KD_LAYER_GLOBAL_AVGPOOL: return "global_avgpool";
    case KD_LAYER_BATCHNORM: return L->in_ndim == 3 ? "batchnorm2d" : "batchnorm1d";
    case KD_LAYER_RESIDUAL: return "residual";
  }
  return "?";
}

static void print_row(const kd_trainer *t, const kd_layer *L, FILE *out) {
  const kd_layer_state *st = &t->st[L->id];
  fprintf(out, "  %-26s %-14s %10.1f %10.1f", L->key, type_name(L), st->fwd_ms, st->bwd_ms);
  if (st->fwd_flop > 0 && st->fwd_ms > 0)
    fprintf(out, " %9.1f", st->fwd_flop / (st->fwd_ms * 1e6));
  else
    fprintf(out, " %9s", "");
  if (st->bwd_flop > 0 && st->bwd_ms > 0) fprintf(out, " %9.1f", st->bwd_flop / (st->bwd_ms * 1e6));
  fprintf(out, "\n");
}

static void print_list(const kd_trainer *t, const kd_layer *layers, int n, FILE *out) {
  for (int i = 0; i < n; i++) {
    const kd_layer *L = &layers[i];
    if (L->type == KD_LAYER_FLATTEN) continue;
    print_row(t, L, out);
    if (L->type == KD_LAYER_RESIDUAL) {
      print_list(t, L->sub, L->num_sub, out);
    }
  }
}

void kd_layer_profile_print(const kd_trainer *t, FILE *out) {
  fprintf(out, "kdcl: per-layer profile (queue drained around each layer; a residual row includes "
               "its sub-layers; an activation after a dense layer runs inside it)\n");
  fprintf(out, "  %-26s %-14s %10s %10s %9s %9s\n", "layer", "type", "fwd ms", "bwd ms",
          "fwd GF/s", "bwd GF/s");
  print_list(t, t->model->layers, t->model->num_layers, out);
  /* The GEMM kernels' share of the device time (kd_gemm_*; CLBlast's are not profiled). */
  const kd_device *dev = t->dev;
  double all = 0, gemm = 0;
  for (int i = 0; i < dev->num_kernels; i++) {
    all += dev->kernels[i].profiled_ms;
    if (!strncmp(dev->kernels[i].name, "kd_gemm_", 8)) gemm += dev->kernels[i].profiled_ms;
  }
  if (all > 0)
    fprintf(out, "kdcl: built-in GEMM kernels %.1f ms of %.1f ms kernel time (%.1f%%)\n", gemm, all,
            100 * gemm / all);
  const kd_arena *arenas[] = {&t->params, &t->grads, &t->opt_state, &t->buffers,
                              &t->acts,   &t->dacts, &t->work};
  double total = 0;
  fprintf(out, "kdcl: device memory:");
  for (size_t i = 0; i < sizeof arenas / sizeof arenas[0]; i++) {
    double mib = (double)arenas[i]->used * sizeof(float) / 1048576.0;
    total += mib;
    fprintf(out, " %s %.2f MiB,", arenas[i]->name, mib);
  }
  double inputs = (double)t->batch * ((double)t->sample_size * sizeof(float) + sizeof(int32_t)) /
                  1048576.0;
  fprintf(out, " inputs %.2f MiB; total %.2f MiB\n", inputs, total + inputs);
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    fprintf(out, "kdcl: peak host RSS %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);
}
