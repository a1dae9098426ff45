/* Distillation losses fused with their gradient w.r.t. the student logits (host/nn/distill_loss.c,
 * definitions in host/nn/distill_loss.h). One work-group of KD_WG work-items per row, for any
 * row width (a sample of 10 classes or, later, a token over a 32k vocabulary): every pass over
 * the row is a strided loop of the group over C, reductions are fixed trees in local memory
 * (KD_WG float4s: kd_group_sum4 / kd_group_max4 in kernels/common.h), so the same inputs give
 * the same bits. Two kernels, one per teacher kind (dense logits, top-k log-probabilities); the
 * loss is an argument. On CPUs, narrow dense rows run 16 to a work-item instead, one per vector
 * lane (kd_distill_dense_forward_backward_rows, below).
 *
 * Numerics: everything is done on log-softmax values ls = log s, lt = log t, which are finite
 * for finite logits; probabilities are exp() of those and may underflow to 0, which is harmless
 * because every product p * (log ratio) has a finite log ratio. Mixtures m = w*a + (1-w)*b are
 * formed in the log domain (log-add-exp), so log m never meets log 0, and the log ratios
 * log(s/m), log(t/m) are bounded by -log(1-w), -log(w). A 0 probability times an infinite log
 * (a teacher logit of -inf) counts as 0; NaN inputs still come out as NaN. */

/* Loss codes: the order of enum kd_distill_loss in host/nn/distill_loss.h. */
#define KD_DL_KD 0
#define KD_DL_RKL 1
#define KD_DL_JSD 2
#define KD_DL_SKL 3
#define KD_DL_TVD 4
#define KD_DL_MSE 5
#define KD_DL_CE 6

/* p * (la - lb) with p = exp(la), where 0 * (anything) = 0 (0 log 0 = 0); NaN stays NaN. */
float kd_dl_plog(float p, float la, float lb) { return p == 0.0f ? 0.0f : p * (la - lb); }

/* log(w*exp(la) + (1-w)*exp(lb)) given lw0 = log(w), lw1 = log(1-w) (lw0 = -inf for w = 0). */
float kd_dl_logmix(float lw0, float lw1, float la, float lb) {
  float x = lw0 + la, y = lw1 + lb;
  float hi = fmax(x, y), lo = fmin(x, y);
  return hi + log1p(exp(lo - hi));
}

/* One class's share of the loss (before the T^2 factor): *v, and *h = s * dL/ds at this class,
 * where L = sum_j v_j and s = softmax(z_s/T). ls, lt: log s, log t at this class; zs, zt:
 * student and teacher logits (mse only). lw0, lw1: log(w), log(1-w) of the mixture weight
 * (beta for jsd, skew for skl). */
void kd_dl_terms(int loss, float ls, float lt, float zs, float zt, float w, float lw0,
                 float lw1, float *v, float *h) {
  float s = exp(ls), t = exp(lt);
  switch (loss) {
  case KD_DL_KD: /* t log(t/s);  dL/ds = -t/s */
    *v = kd_dl_plog(t, lt, ls);
    *h = -t;
    break;
  case KD_DL_RKL: /* s log(s/t);  dL/ds = log(s/t) + 1 */
    *v = kd_dl_plog(s, ls, lt);
    *h = s == 0.0f ? 0.0f : s * ((ls - lt) + 1.0f);
    break;
  case KD_DL_JSD: { /* w t log(t/m) + (1-w) s log(s/m), m = w t + (1-w) s;  dL/ds = (1-w) log(s/m) */
    float lm = kd_dl_logmix(lw0, lw1, lt, ls);
    float b = kd_dl_plog(s, ls, lm);
    *v = w * kd_dl_plog(t, lt, lm) + (1.0f - w) * b;
    *h = (1.0f - w) * b;
    break;
  }
  case KD_DL_SKL: { /* t log(t/m), m = w t + (1-w) s;  s dL/ds = -(1-w) s t / m */
    float lm = kd_dl_logmix(lw0, lw1, lt, ls);
    *v = kd_dl_plog(t, lt, lm);
    *h = -(1.0f - w) * exp((ls - lm) + lt); /* ls - lm <= -log(1-w): no overflow */
    break;
  }
  case KD_DL_TVD: /* |t - s| / 2;  dL/ds = sign(s - t) / 2, 0 at a tie */
    *v = 0.5f * fabs(t - s);
    *h = s > t ? 0.5f * s : (s < t ? -0.5f * s : 0.0f);
    break;
  case KD_DL_MSE:
    *v = (zs - zt) * (zs - zt);
    *h = 0.0f;
    break;
  default:
    *v = 0.0f;
    *h = 0.0f;
  }
}

/* d(distillation term)/d(z_s) at one class from its h and the row's H = sum_j h_j:
 * T^2 * (1/T) * (h - s*H) for the distribution losses (softmax Jacobian), 2 (zs - zt) / C for
 * mse. */
float kd_dl_grad(int loss, float ls, float zs, float zt, float h, float H, float T, uint C) {
  if (loss == KD_DL_MSE) return isnan(H) ? NAN : 2.0f * (zs - zt) / (float)C; /* NaN: poisoned row */
  return T * (h - exp(ls) * H);
}

/* The row's distillation value from V = sum_j v_j. */
float kd_dl_value(int loss, float V, float T, uint C) {
  if (loss == KD_DL_CE) return 0.0f;
  if (loss == KD_DL_MSE) return V / (float)C;
  return T * T * V;
}

/* Mixture weight and its logs for jsd (beta) and skl (skew). */
void kd_dl_weights(int loss, float beta, float skew, float *w, float *lw0, float *lw1) {
  *w = loss == KD_DL_JSD ? beta : (loss == KD_DL_SKL ? skew : 0.5f);
  *lw0 = *w > 0.0f ? log(*w) : -INFINITY;
  *lw1 = log1p(-*w);
}

/* The passes over one lane of a dense-teacher row (classes lid, lid + KD_WG, ...): work-item
 * lid of the row's group runs lane lid, and kd_group_*4 combines the lanes. */
float4 kd_dl_lane_max(__global const float *z, __global const float *zt, int has_t, uint C,
                      uint lid) {
  float mz = -INFINITY, mt = -INFINITY;
  for (uint j = lid; j < C; j += KD_WG) {
    mz = fmax(mz, z[j]);
    if (has_t) mt = fmax(mt, zt[j]);
  }
  return (float4)(mz, mt, 0.0f, 0.0f);
}

float4 kd_dl_lane_sums(__global const float *z, __global const float *zt, int has_t, uint C,
                       uint lid, float mz, float mt, float T) {
  float s1 = 0.0f, sT = 0.0f, st = 0.0f;
  for (uint j = lid; j < C; j += KD_WG) {
    float d = z[j] - mz;
    s1 += exp(d); /* NaN logits reach the sums here */
    sT += exp(d / T);
    if (has_t) st += exp((zt[j] - mt) / T);
  }
  return (float4)(s1, sT, st, 0.0f);
}

/* The row's scalars after the first two passes. */
typedef struct kd_dl_row {
  int loss, has_t;
  float mz, mt, T, lsT, lst, w, lw0, lw1;
} kd_dl_row;

float4 kd_dl_lane_terms(__global const float *z, __global const float *zt, uint C, uint lid,
                        const kd_dl_row *q) {
  float V = 0.0f, H = 0.0f;
  if (q->has_t)
    for (uint j = lid; j < C; j += KD_WG) {
      float zj = z[j], ztj = zt[j], v, h;
      kd_dl_terms(q->loss, (zj - q->mz) / q->T - q->lsT, (ztj - q->mt) / q->T - q->lst, zj, ztj,
                  q->w, q->lw0, q->lw1, &v, &h);
      V += v;
      H += h;
    }
  return (float4)(V, H, 0.0f, 0.0f);
}

void kd_dl_lane_grad(__global float *d, __global const float *z, __global const float *zt,
                     uint C, uint lid, const kd_dl_row *q, float s1, float H, int y, int valid,
                     float alpha, float grad_scale) {
  float ca = grad_scale * alpha, cb = grad_scale * (1.0f - alpha);
  float inv = ca / s1, hot = valid ? ca : NAN;
  for (uint j = lid; j < C; j += KD_WG) {
    float zj = z[j];
    float g = exp(zj - q->mz) * inv; /* the same expression as kd_softmax_ce_forward_backward */
    g = ((int)j == y || !valid) ? g - hot : g;
    if (q->has_t) {
      float ztj = zt[j], ls = (zj - q->mz) / q->T - q->lsT, v, h;
      kd_dl_terms(q->loss, ls, (ztj - q->mt) / q->T - q->lst, zj, ztj, q->w, q->lw0, q->lw1, &v,
                  &h);
      g += cb * kd_dl_grad(q->loss, ls, zj, ztj, h, H, q->T, C);
    }
    d[j] = g;
  }
}

/* Dense teacher. Rows [B, C] of student logits, teacher logits (same shape), int32 labels [B]:
 *   ce_rows[r]  = logsumexp(z_r) - z_r[y_r]                         (T = 1)
 *   kd_rows[r]  = the distillation term of `loss` (0 for ce)
 *   dlogits[r,:] = grad_scale * d/dz [alpha * ce + (1 - alpha) * kd] (when want_grad)
 * The host passes alpha = 1 for ce. A label outside [0, C) gives NaN in ce_rows[r] and in row r
 * of dlogits. dlogits may alias logits (each class is read before it is written, by the same
 * work-item); teacher is not read for ce. One work-group per row. */
#define KD_DL_DENSE_ARGS                                                                        \
  __global float *ce_rows, uint ce_off, __global float *kd_rows, uint kd_off,                   \
      __global float *dlogits, uint dl_off, int want_grad, __global const float *logits,        \
      uint z_off, __global const int *labels, uint lab_off, __global const float *teacher,      \
      uint t_off, uint B, uint C, int loss, float T, float alpha, float beta, float skew,        \
      float grad_scale

__kernel KD_REQD_WG_1D void kd_distill_dense_forward_backward(KD_DL_DENSE_ARGS) {
  __local float4 scratch[KD_WG];
  uint row = get_group_id(0), lid = get_local_id(0);
  if (row >= B) return; /* whole group leaves together */
  __global const float *z = logits + z_off + row * C;
  __global const float *zt = teacher + t_off + row * C;
  kd_dl_row q;
  q.loss = loss;
  q.has_t = loss != KD_DL_CE;
  q.T = T;

  float4 r = kd_group_max4(kd_dl_lane_max(z, zt, q.has_t, C, lid), scratch);
  q.mz = r.x;
  q.mt = r.y;
  /* Read before the next barrier: when dlogits aliases logits, z is overwritten below. */
  int y = labels[lab_off + row];
  int valid = y >= 0 && (uint)y < C;
  float zy = (lid == 0 && valid) ? z[y] : 0.0f;

  r = kd_group_sum4(kd_dl_lane_sums(z, zt, q.has_t, C, lid, q.mz, q.mt, T), scratch);
  float s1 = r.x;
  q.lsT = log(r.y);
  q.lst = log(r.z);
  kd_dl_weights(loss, beta, skew, &q.w, &q.lw0, &q.lw1);
  r = kd_group_sum4(kd_dl_lane_terms(z, zt, C, lid, &q), scratch);
  float V = r.x, H = r.y;
  if (isnan(V) || isnan(H)) V = H = NAN; /* NaN teacher data: value and gradient row NaN */

  if (lid == 0) { /* log(s) - (z_y - m): no cancellation against a large m */
    ce_rows[ce_off + row] = valid ? log(s1) - (zy - q.mz) : NAN;
    kd_rows[kd_off + row] = kd_dl_value(loss, V, T, C);
  }
  if (want_grad)
    kd_dl_lane_grad(dlogits + dl_off + row * C, z, zt, C, lid, &q, s1, H, y, valid, alpha,
                    grad_scale);
}

/* ---- Narrow dense rows on CPUs: 16 rows per work-item, one per lane of a float16 ----
 * The same formulas as the scalar functions above, lane-wise; sums over the classes run in order
 * rather than the work-group kernel's tree, so results agree with it to float rounding (the
 * vector exp and log may also differ from the scalar ones in the last bit). Deterministic.
 * kd_rows_load / kd_rows_store and KD_ROWS_* are in kernels/loss.cl. */
float16 kd_dl_plog16(float16 p, float16 la, float16 lb) {
  return select(p * (la - lb), (float16)(0.0f), p == 0.0f);
}

float16 kd_dl_logmix16(float lw0, float lw1, float16 la, float16 lb) {
  float16 x = lw0 + la, y = lw1 + lb;
  float16 hi = fmax(x, y), lo = fmin(x, y);
  return hi + log1p(exp(lo - hi));
}

void kd_dl_terms16(int loss, float16 ls, float16 lt, float16 zs, float16 zt, float w, float lw0,
                   float lw1, float16 *v, float16 *h) {
  float16 s = exp(ls), t = exp(lt);
  switch (loss) {
  case KD_DL_KD:
    *v = kd_dl_plog16(t, lt, ls);
    *h = -t;
    break;
  case KD_DL_RKL:
    *v = kd_dl_plog16(s, ls, lt);
    *h = select(s * ((ls - lt) + 1.0f), (float16)(0.0f), s == 0.0f);
    break;
  case KD_DL_JSD: {
    float16 lm = kd_dl_logmix16(lw0, lw1, lt, ls);
    float16 b = kd_dl_plog16(s, ls, lm);
    *v = w * kd_dl_plog16(t, lt, lm) + (1.0f - w) * b;
    *h = (1.0f - w) * b;
    break;
  }
  case KD_DL_SKL: {
    float16 lm = kd_dl_logmix16(lw0, lw1, lt, ls);
    *v = kd_dl_plog16(t, lt, lm);
    *h = -(1.0f - w) * exp((ls - lm) + lt);
    break;
  }
  case KD_DL_TVD:
    *v = 0.5f * fabs(t - s);
    *h = select(select((float16)(0.0f), -0.5f * s, s < t), 0.5f * s, s > t);
    break;
  case KD_DL_MSE:
    *v = (zs - zt) * (zs - zt);
    *h = (float16)(0.0f);
    break;
  default:
    *v = (float16)(0.0f);
    *h = (float16)(0.0f);
  }
}

float16 kd_dl_grad16(int loss, float16 ls, float16 zs, float16 zt, float16 h, float16 H, float T,
                     uint C) {
  if (loss == KD_DL_MSE) return select(2.0f * (zs - zt) / (float)C, (float16)(NAN), isnan(H));
  return T * (h - exp(ls) * H);
}

float16 kd_dl_value16(int loss, float16 V, float T, uint C) {
  if (loss == KD_DL_CE) return (float16)(0.0f);
  if (loss == KD_DL_MSE) return V / (float)C;
  return T * T * V;
}

__kernel KD_REQD_WG_ROWS void kd_distill_dense_forward_backward_rows(KD_DL_DENSE_ARGS) {
  const uint r0 = get_global_id(0) * KD_ROWS_V;
  if (r0 >= B) return;
  const uint n = min((uint)KD_ROWS_V, B - r0); /* rows of this work-item; the rest repeat row B-1 */
  const int has_t = loss != KD_DL_CE;
  uint zo[KD_ROWS_V], to[KD_ROWS_V], dlo[KD_ROWS_V];
  int yv[KD_ROWS_V];
  float zyv[KD_ROWS_V];
  for (uint l = 0; l < KD_ROWS_V; l++) {
    uint row = min(r0 + l, B - 1);
    zo[l] = z_off + row * C;
    to[l] = t_off + row * C;
    dlo[l] = dl_off + row * C;
    yv[l] = labels[lab_off + row];
  }
  int16 y = vload16(0, yv);
  int16 valid = (y >= 0) & (y < (int)C);

  float16 mz = (float16)(-INFINITY), mt = (float16)(-INFINITY);
  for (uint j = 0; j < C; j++) {
    mz = fmax(mz, kd_rows_load(logits, zo, j));
    if (has_t) mt = fmax(mt, kd_rows_load(teacher, to, j));
  }
  /* Read before any write: when dlogits aliases logits, z is overwritten below. */
  for (uint l = 0; l < KD_ROWS_V; l++)
    zyv[l] = yv[l] >= 0 && (uint)yv[l] < C ? logits[zo[l] + (uint)yv[l]] : 0.0f;
  float16 zy = vload16(0, zyv);

  float16 s1 = (float16)(0.0f), sT = (float16)(0.0f), st = (float16)(0.0f);
  for (uint j = 0; j < C; j++) {
    float16 d = kd_rows_load(logits, zo, j) - mz;
    s1 += exp(d); /* NaN logits reach the sums here */
    sT += exp(d / T);
    if (has_t) st += exp((kd_rows_load(teacher, to, j) - mt) / T);
  }
  float16 lsT = log(sT), lst = log(st);

  float w, lw0, lw1;
  kd_dl_weights(loss, beta, skew, &w, &lw0, &lw1);
  float16 V = (float16)(0.0f), H = (float16)(0.0f);
  if (has_t)
    for (uint j = 0; j < C; j++) {
      float16 zj = kd_rows_load(logits, zo, j), ztj = kd_rows_load(teacher, to, j), v, h;
      kd_dl_terms16(loss, (zj - mz) / T - lsT, (ztj - mt) / T - lst, zj, ztj, w, lw0, lw1, &v, &h);
      V += v;
      H += h;
    }
  int16 bad = isnan(V) | isnan(H); /* NaN teacher data: value and gradient row NaN */
  V = select(V, (float16)(NAN), bad);
  H = select(H, (float16)(NAN), bad);

  float16 ce = select((float16)(NAN), log(s1) - (zy - mz), valid);
  float16 kdv = kd_dl_value16(loss, V, T, C);
  float ct[KD_ROWS_V], kt[KD_ROWS_V];
  vstore16(ce, 0, ct);
  vstore16(kdv, 0, kt);
  for (uint l = 0; l < n; l++) {
    ce_rows[ce_off + r0 + l] = ct[l];
    kd_rows[kd_off + r0 + l] = kt[l];
  }
  if (want_grad) {
    float ca = grad_scale * alpha, cb = grad_scale * (1.0f - alpha);
    float16 inv = ca / s1, hot = select((float16)(NAN), (float16)(ca), valid);
    for (uint j = 0; j < C; j++) {
      float16 zj = kd_rows_load(logits, zo, j);
      float16 g = exp(zj - mz) * inv;
      g = select(g, g - hot, (y == (int)j) | ~valid);
      if (has_t) {
        float16 ztj = kd_rows_load(teacher, to, j), ls = (zj - mz) / T - lsT, v, h;
        kd_dl_terms16(loss, ls, (ztj - mt) / T - lst, zj, ztj, w, lw0, lw1, &v, &h);
        g += cb * kd_dl_grad16(loss, ls, zj, ztj, h, H, T, C);
      }
      kd_rows_store(dlogits, dlo, j, g, n);
    }
  }
}

/* The smallest class c >= from with c % KD_WG == lid among the K top-k indices of a row, and
 * its position (*pos); *dup = 1 when that class appears more than once. 0xffffffff when none.
 * Work-item lid walks its classes lid, lid+KD_WG, ... upward and asks for the next member each
 * time it passes one, so membership costs O(K * (K/KD_WG + 1)) per work-item and no memory of
 * size C or K. Indices outside [0, C) are never reached (the caller poisons such rows). */
uint kd_dl_topk_next(__global const int *idx, uint K, uint from, uint lid, uint *pos, int *dup) {
  uint best = 0xffffffffu, bp = 0;
  int d = 0;
  for (uint i = 0; i < K; i++) {
    uint c = (uint)idx[i];
    if (c >= from && (c & (KD_WG - 1)) == lid) {
      if (c < best) {
        best = c;
        bp = i;
        d = 0;
      } else if (c == best) {
        d = 1;
      }
    }
  }
  *pos = bp;
  *dup = d;
  return best;
}

/* Top-k teacher: topk_idx int32 [B, K], topk_logp float [B, K] (natural-log probabilities at
 * T = 1 over all C classes). The teacher's log-probability at T = 1 of class j, lp_j, is logp_i
 * for j = idx_i, and for the other classes:
 *   uniform = 0 (drop): no teacher; the distillation sums run over the K classes only, with
 *           t = softmax over the K entries of logp/T and s the student's full softmax(z/T);
 *   uniform = 1: lp_u = log(max(max(0, 1 - sum_i exp(logp_i)) / (C - K), FLT_MIN)), and the
 *           teacher is t = softmax over all C of lp/T (mse compares z with lp).
 * Outputs as the dense kernel. An index outside [0, C) or repeated within the row gives NaN in
 * kd_rows[r] and in row r of dlogits. The host refuses mse with uniform = 0. */
__kernel KD_REQD_WG_1D void kd_distill_topk_forward_backward(
    __global float *ce_rows, uint ce_off, __global float *kd_rows, uint kd_off,
    __global float *dlogits, uint dl_off, int want_grad, __global const float *logits, uint z_off,
    __global const int *labels, uint lab_off, __global const int *topk_idx, uint idx_off,
    __global const float *topk_logp, uint lp_off, uint B, uint C, uint K, int uniform, int loss,
    float T, float alpha, float beta, float skew, float grad_scale) {
  __local float4 scratch[KD_WG];
  uint row = get_group_id(0), lid = get_local_id(0);
  if (row >= B) return;
  __global const float *z = logits + z_off + row * C;
  __global const int *idx = topk_idx + idx_off + row * K;
  __global const float *lp = topk_logp + lp_off + row * K;
  int has_t = loss != KD_DL_CE;

  float mz = -INFINITY, mlp = -INFINITY;
  for (uint j = lid; j < C; j += KD_WG) mz = fmax(mz, z[j]);
  if (has_t)
    for (uint i = lid; i < K; i += KD_WG) mlp = fmax(mlp, lp[i]);
  float4 r = kd_group_max4((float4)(mz, mlp, 0.0f, 0.0f), scratch);
  mz = r.x;
  mlp = r.y;
  int y = labels[lab_off + row];
  int valid = y >= 0 && (uint)y < C;
  float zy = (lid == 0 && valid) ? z[y] : 0.0f;

  float s1 = 0.0f, sT = 0.0f;
  for (uint j = lid; j < C; j += KD_WG) {
    float d = z[j] - mz;
    s1 += exp(d);
    sT += exp(d / T);
  }
  /* Teacher sums over K: sK = sum exp((lp - mlp)/T); at T = 1 the entries below the max (A)
   * and the count of entries at the max (n), kept apart so that the missing mass
   * 1 - sum exp(lp) = -expm1(mlp + log1p(n - 1 + A)) keeps its digits when it is tiny (a
   * confident teacher) instead of cancelling in 1 - (sum ~ 1). */
  float sK = 0.0f, A = 0.0f, n = 0.0f;
  if (has_t)
    for (uint i = lid; i < K; i += KD_WG) {
      float l = lp[i];
      sK += (uint)idx[i] < C ? exp((l - mlp) / T) : NAN; /* a bad index poisons the row */
      if (l == mlp) n += 1.0f;
      else A += exp(l - mlp);
    }
  r = kd_group_sum4((float4)(s1, sT, 0.0f, 0.0f), scratch);
  s1 = r.x;
  float lsT = log(r.y);
  r = kd_group_sum4((float4)(sK, A, n, 0.0f), scratch);
  /* The teacher's normaliser at T: over the K entries (drop), or over all C classes with the
   * missing mass spread evenly over the C - K others (uniform). */
  float M = mlp, St = r.x, lpu = 0.0f;
  int spread = uniform && C > K;
  if (spread) {
    float missing = -expm1(mlp + log1p((r.z - 1.0f) + r.y));
    lpu = log(fmax(fmax(missing, 0.0f) / (float)(C - K), FLT_MIN));
    M = fmax(mlp, lpu);
    St = r.x * exp((mlp - M) / T) + (float)(C - K) * exp((lpu - M) / T);
  }
  float lst = log(St);

  float w, lw0, lw1;
  kd_dl_weights(loss, beta, skew, &w, &lw0, &lw1);
  float V = 0.0f, H = 0.0f;
  if (has_t) {
    uint pos;
    int dup;
    uint next = kd_dl_topk_next(idx, K, lid, lid, &pos, &dup);
    for (uint j = lid; j < C; j += KD_WG) {
      int member = j == next;
      if (member || spread) {
        float zj = z[j], ltj = member ? lp[pos] : lpu, v, h;
        kd_dl_terms(loss, (zj - mz) / T - lsT, (ltj - M) / T - lst, zj, ltj, w, lw0, lw1, &v, &h);
        if (member && dup) v = h = NAN;
        V += v;
        H += h;
      }
      if (member) next = kd_dl_topk_next(idx, K, j + 1, lid, &pos, &dup);
    }
  }
  r = kd_group_sum4((float4)(V, H, 0.0f, 0.0f), scratch);
  V = r.x;
  H = r.y;
  /* A bad or repeated index, NaN teacher data: value and gradient row NaN (whatever the loss
   * reads, even when no class of the row is a valid member). */
  if (isnan(V) || isnan(H) || (has_t && isnan(St))) V = H = NAN;

  if (lid == 0) {
    ce_rows[ce_off + row] = valid ? log(s1) - (zy - mz) : NAN;
    kd_rows[kd_off + row] = kd_dl_value(loss, V, T, C);
  }
  if (want_grad) {
    float ca = grad_scale * alpha, cb = grad_scale * (1.0f - alpha);
    float inv = ca / s1, hot = valid ? ca : NAN;
    __global float *d = dlogits + dl_off + row * C;
    uint pos = 0, next = 0xffffffffu;
    int dup = 0;
    if (has_t) next = kd_dl_topk_next(idx, K, lid, lid, &pos, &dup);
    for (uint j = lid; j < C; j += KD_WG) {
      float zj = z[j];
      float g = exp(zj - mz) * inv;
      g = ((int)j == y || !valid) ? g - hot : g;
      if (has_t) {
        int member = j == next;
        float ls = (zj - mz) / T - lsT, ltj = member ? lp[pos] : lpu, v = 0.0f, h = 0.0f;
        if (member || spread)
          kd_dl_terms(loss, ls, (ltj - M) / T - lst, zj, ltj, w, lw0, lw1, &v, &h);
        /* drop, class outside K: h = 0, only the softmax coupling -s*H remains */
        g += cb * kd_dl_grad(loss, ls, zj, ltj, h, H, T, C);
        if (member) next = kd_dl_topk_next(idx, K, j + 1, lid, &pos, &dup);
      }
      d[j] = g;
    }
  }
}
