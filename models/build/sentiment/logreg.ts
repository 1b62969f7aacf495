/**
 * L2-regularised binary logistic regression, fitted with full-batch L-BFGS.
 *
 * Objective (scikit-learn's convention):
 *   C · Σᵢ log(1 + exp(−ỹᵢ (w·xᵢ + b)))  +  ½ Σⱼ pⱼ wⱼ²
 * where pⱼ is a per-feature penalty factor (1 for an n-gram, smaller for the
 * lexicon feature so that it acts as a prior) and the bias b is not penalised.
 * The objective is strictly convex, so the optimum does not depend on a seed;
 * the optimiser is deterministic (fixed iteration order, no randomness) and
 * stops on a gradient-norm tolerance or an iteration cap.
 */

/** A sparse design matrix in compressed-row form. */
export interface Csr {
  rows: number;
  cols: number;
  rowPtr: Int32Array; // length rows + 1
  colIdx: Int32Array;
  values: Float64Array;
}

export function csrFromRows(rows: ReadonlyArray<ReadonlyArray<readonly [number, number]>>, cols: number): Csr {
  let nnz = 0;
  for (const r of rows) nnz += r.length;
  const rowPtr = new Int32Array(rows.length + 1);
  const colIdx = new Int32Array(nnz);
  const values = new Float64Array(nnz);
  let k = 0;
  rows.forEach((r, i) => {
    for (const [c, v] of r) {
      colIdx[k] = c;
      values[k] = v;
      k++;
    }
    rowPtr[i + 1] = k;
  });
  return { rows: rows.length, cols, rowPtr, colIdx, values };
}

export interface LogRegOptions {
  /** Inverse regularisation strength. */
  C: number;
  /** Per-feature penalty factors (default 1 for every feature). */
  penalty?: Float64Array;
  maxIter?: number;
  /** Stop when ‖∇f‖∞ ≤ tol · max(1, |f|). */
  tol?: number;
  /** L-BFGS history size. */
  memory?: number;
  /** A fixed per-row offset added to the decision value (not learned). */
  offset?: Float64Array;
}

export interface LogRegModel {
  weights: Float64Array;
  bias: number;
  iterations: number;
  converged: boolean;
}

/** log(1 + exp(z)) without overflow. */
function softplus(z: number): number {
  return z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
}

export function sigmoid(z: number): number {
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

export function decision(X: Csr, row: number, w: ArrayLike<number>, b: number): number {
  let z = b;
  for (let k = X.rowPtr[row]!; k < X.rowPtr[row + 1]!; k++) z += X.values[k]! * w[X.colIdx[k]!]!;
  return z;
}

/** Parameters θ = [w₀ … w_{d−1}, b]; returns f(θ) and writes ∇f into grad. */
function objective(X: Csr, y: Uint8Array, C: number, pen: Float64Array, offset: Float64Array | undefined, theta: Float64Array, grad: Float64Array): number {
  const d = X.cols;
  const b = theta[d]!;
  let f = 0;
  grad.fill(0);
  for (let i = 0; i < X.rows; i++) {
    const z = decision(X, i, theta, b) + (offset ? offset[i]! : 0);
    const yi = y[i]!;
    f += C * (softplus(z) - yi * z);
    const g = C * (sigmoid(z) - yi);
    for (let k = X.rowPtr[i]!; k < X.rowPtr[i + 1]!; k++) grad[X.colIdx[k]!]! += g * X.values[k]!;
    grad[d]! += g;
  }
  for (let j = 0; j < d; j++) {
    const wj = theta[j]!;
    f += 0.5 * pen[j]! * wj * wj;
    grad[j]! += pen[j]! * wj;
  }
  return f;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function normInf(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export function fitLogReg(X: Csr, y: Uint8Array, options: LogRegOptions): LogRegModel {
  const { C } = options;
  const maxIter = options.maxIter ?? 1000;
  const tol = options.tol ?? 1e-7;
  const m = options.memory ?? 10;
  const d = X.cols;
  const n = d + 1;
  const pen = options.penalty ?? new Float64Array(d).fill(1);
  if (pen.length !== d) throw new Error(`penalty has ${pen.length} entries, expected ${d}`);
  if (y.length !== X.rows) throw new Error(`y has ${y.length} labels, expected ${X.rows}`);

  let theta = new Float64Array(n);
  let grad = new Float64Array(n);
  let f = objective(X, y, C, pen, options.offset, theta, grad);
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  const alpha = new Float64Array(m);
  const dir = new Float64Array(n);
  const thetaNew = new Float64Array(n);
  const gradNew = new Float64Array(n);

  let iter = 0;
  let converged = false;
  for (; iter < maxIter; iter++) {
    if (normInf(grad) <= tol * Math.max(1, Math.abs(f))) {
      converged = true;
      break;
    }
    // Two-loop recursion: dir = −H·grad.
    for (let i = 0; i < n; i++) dir[i] = -grad[i]!;
    for (let k = S.length - 1; k >= 0; k--) {
      const a = rho[k]! * dot(S[k]!, dir);
      alpha[k] = a;
      const yk = Y[k]!;
      for (let i = 0; i < n; i++) dir[i]! -= a * yk[i]!;
    }
    if (S.length > 0) {
      const last = S.length - 1;
      const gamma = dot(S[last]!, Y[last]!) / dot(Y[last]!, Y[last]!);
      for (let i = 0; i < n; i++) dir[i]! *= gamma;
    } else {
      const g = normInf(grad);
      for (let i = 0; i < n; i++) dir[i]! /= Math.max(1, g);
    }
    for (let k = 0; k < S.length; k++) {
      const beta = rho[k]! * dot(Y[k]!, dir);
      const sk = S[k]!;
      const a = alpha[k]!;
      for (let i = 0; i < n; i++) dir[i]! += (a - beta) * sk[i]!;
    }
    let slope = dot(grad, dir);
    if (!(slope < 0)) {
      // Not a descent direction (numerical trouble): restart from steepest descent.
      S.length = 0;
      Y.length = 0;
      rho.length = 0;
      for (let i = 0; i < n; i++) dir[i] = -grad[i]!;
      slope = dot(grad, dir);
    }
    // Backtracking line search (Armijo).
    let step = 1;
    let fNew = Infinity;
    for (let ls = 0; ls < 60; ls++) {
      for (let i = 0; i < n; i++) thetaNew[i] = theta[i]! + step * dir[i]!;
      fNew = objective(X, y, C, pen, options.offset, thetaNew, gradNew);
      if (fNew <= f + 1e-4 * step * slope) break;
      step *= 0.5;
    }
    if (!(fNew < f)) break; // stalled: no further progress in floating point (converged stays false)
    const s = new Float64Array(n);
    const yv = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = thetaNew[i]! - theta[i]!;
      yv[i] = gradNew[i]! - grad[i]!;
    }
    const sy = dot(s, yv);
    if (sy > 1e-12) {
      if (S.length === m) {
        S.shift();
        Y.shift();
        rho.shift();
      }
      S.push(s);
      Y.push(yv);
      rho.push(1 / sy);
    }
    [theta, grad] = [Float64Array.from(thetaNew), Float64Array.from(gradNew)];
    f = fNew;
  }
  return { weights: theta.slice(0, d), bias: theta[d]!, iterations: iter, converged };
}
