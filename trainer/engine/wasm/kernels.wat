;; SIMD kernels that tfjs's wasm backend lacks. The module imports the backend's own
;; memory, so it reads inputs and writes outputs in place (all arguments are byte
;; offsets into that heap). Row widths (cols) must be multiples of 4 floats.
(module
  (import "env" "memory" (memory 1))

  ;; out[0..n) += w * x[0..n), n floats, 4 at a time.
  (func $axpy (param $o i32) (param $xi i32) (param $w f32) (param $n i32)
    (local $wv v128) (local $end i32)
    (local.set $wv (f32x4.splat (local.get $w)))
    (local.set $end (i32.add (local.get $o) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $o) (local.get $end)))
        (v128.store (local.get $o)
          (f32x4.add (v128.load (local.get $o))
                     (f32x4.mul (local.get $wv) (v128.load (local.get $xi)))))
        (local.set $o (i32.add (local.get $o) (i32.const 16)))
        (local.set $xi (i32.add (local.get $xi) (i32.const 16)))
        (br $l))))

  ;; out[rows, cols] = A · x, A in CSR (indptr[rows+1], indices, values).
  (func (export "csr_matmul")
    (param $out i32) (param $indptr i32) (param $indices i32) (param $values i32)
    (param $x i32) (param $rows i32) (param $cols i32)
    (local $r i32) (local $k i32) (local $end i32) (local $rowBytes i32) (local $o i32)
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    (memory.fill (local.get $out) (i32.const 0) (i32.mul (local.get $rows) (local.get $rowBytes)))
    (block $done
      (loop $rl
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $k (i32.load (i32.add (local.get $indptr) (i32.shl (local.get $r) (i32.const 2)))))
        (local.set $end (i32.load offset=4 (i32.add (local.get $indptr) (i32.shl (local.get $r) (i32.const 2)))))
        (local.set $o (i32.add (local.get $out) (i32.mul (local.get $r) (local.get $rowBytes))))
        (block $kd
          (loop $kl
            (br_if $kd (i32.ge_u (local.get $k) (local.get $end)))
            (call $axpy
              (local.get $o)
              (i32.add (local.get $x)
                (i32.mul (i32.load (i32.add (local.get $indices) (i32.shl (local.get $k) (i32.const 2))))
                         (local.get $rowBytes)))
              (f32.load (i32.add (local.get $values) (i32.shl (local.get $k) (i32.const 2))))
              (local.get $cols))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $kl)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rl))))

  ;; out[outRows, cols] = Aᵀ · x: a scatter over A's rows.
  (func (export "csr_matmul_t")
    (param $out i32) (param $indptr i32) (param $indices i32) (param $values i32)
    (param $x i32) (param $rows i32) (param $cols i32) (param $outRows i32)
    (local $r i32) (local $k i32) (local $end i32) (local $rowBytes i32) (local $xi i32)
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    (memory.fill (local.get $out) (i32.const 0) (i32.mul (local.get $outRows) (local.get $rowBytes)))
    (block $done
      (loop $rl
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $k (i32.load (i32.add (local.get $indptr) (i32.shl (local.get $r) (i32.const 2)))))
        (local.set $end (i32.load offset=4 (i32.add (local.get $indptr) (i32.shl (local.get $r) (i32.const 2)))))
        (local.set $xi (i32.add (local.get $x) (i32.mul (local.get $r) (local.get $rowBytes))))
        (block $kd
          (loop $kl
            (br_if $kd (i32.ge_u (local.get $k) (local.get $end)))
            (call $axpy
              (i32.add (local.get $out)
                (i32.mul (i32.load (i32.add (local.get $indices) (i32.shl (local.get $k) (i32.const 2))))
                         (local.get $rowBytes)))
              (local.get $xi)
              (f32.load (i32.add (local.get $values) (i32.shl (local.get $k) (i32.const 2))))
              (local.get $cols))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $kl)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rl))))

  ;; out[r, :] = Σ_k values[k]·x[indices[k], :] over row r's entries, summed in entry order from 0
  ;; (the same order, so the same float32 values, as csr_matmul and as csr_matmul_t on the
  ;; transposed CSR), the row written once: the columns go in strips of 16 held in four
  ;; registers, then strips of 4. Then, per mode bit: 1: out[r] += add[r]; 2: sum[r] += out[r];
  ;; 4: sum[r] *= scale (after 2). LightGCN's propagation is made of these (propagate.ts).
  (func (export "spmm")
    (param $out i32) (param $indptr i32) (param $indices i32) (param $values i32) (param $x i32)
    (param $rows i32) (param $cols i32) (param $add i32) (param $sum i32) (param $scale f32) (param $mode i32)
    (local $r i32) (local $k i32) (local $k0 i32) (local $k1 i32) (local $rowBytes i32) (local $c i32)
    (local $end16 i32) (local $xp i32) (local $p i32) (local $w v128) (local $sv v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $end16 (i32.shl (i32.and (local.get $cols) (i32.const -16)) (i32.const 2)))
    (local.set $sv (f32x4.splat (local.get $scale)))
    (block $done
      (loop $rl
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $k0 (i32.load (i32.add (local.get $indptr) (i32.shl (local.get $r) (i32.const 2)))))
        (local.set $k1 (i32.load offset=4 (i32.add (local.get $indptr) (i32.shl (local.get $r) (i32.const 2)))))
        (local.set $c (i32.const 0))
        ;; strips of 16 columns
        (block $s16done
          (loop $s16
            (br_if $s16done (i32.ge_u (local.get $c) (local.get $end16)))
            (local.set $a0 (v128.const f32x4 0 0 0 0))
            (local.set $a1 (v128.const f32x4 0 0 0 0))
            (local.set $a2 (v128.const f32x4 0 0 0 0))
            (local.set $a3 (v128.const f32x4 0 0 0 0))
            (local.set $k (local.get $k0))
            (block $kd
              (loop $kl
                (br_if $kd (i32.ge_u (local.get $k) (local.get $k1)))
                (local.set $w (f32x4.splat (f32.load (i32.add (local.get $values) (i32.shl (local.get $k) (i32.const 2))))))
                (local.set $xp
                  (i32.add (i32.add (local.get $x) (local.get $c))
                    (i32.mul (i32.load (i32.add (local.get $indices) (i32.shl (local.get $k) (i32.const 2)))) (local.get $rowBytes))))
                (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $w) (v128.load (local.get $xp)))))
                (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $w) (v128.load offset=16 (local.get $xp)))))
                (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $w) (v128.load offset=32 (local.get $xp)))))
                (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $w) (v128.load offset=48 (local.get $xp)))))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br $kl)))
            (local.set $p (i32.add (i32.mul (local.get $r) (local.get $rowBytes)) (local.get $c)))
            (if (i32.and (local.get $mode) (i32.const 1))
              (then
                (local.set $a0 (f32x4.add (local.get $a0) (v128.load (i32.add (local.get $add) (local.get $p)))))
                (local.set $a1 (f32x4.add (local.get $a1) (v128.load offset=16 (i32.add (local.get $add) (local.get $p)))))
                (local.set $a2 (f32x4.add (local.get $a2) (v128.load offset=32 (i32.add (local.get $add) (local.get $p)))))
                (local.set $a3 (f32x4.add (local.get $a3) (v128.load offset=48 (i32.add (local.get $add) (local.get $p)))))))
            (v128.store (i32.add (local.get $out) (local.get $p)) (local.get $a0))
            (v128.store offset=16 (i32.add (local.get $out) (local.get $p)) (local.get $a1))
            (v128.store offset=32 (i32.add (local.get $out) (local.get $p)) (local.get $a2))
            (v128.store offset=48 (i32.add (local.get $out) (local.get $p)) (local.get $a3))
            (if (i32.and (local.get $mode) (i32.const 2))
              (then
                (local.set $a0 (f32x4.add (v128.load (i32.add (local.get $sum) (local.get $p))) (local.get $a0)))
                (local.set $a1 (f32x4.add (v128.load offset=16 (i32.add (local.get $sum) (local.get $p))) (local.get $a1)))
                (local.set $a2 (f32x4.add (v128.load offset=32 (i32.add (local.get $sum) (local.get $p))) (local.get $a2)))
                (local.set $a3 (f32x4.add (v128.load offset=48 (i32.add (local.get $sum) (local.get $p))) (local.get $a3)))
                (if (i32.and (local.get $mode) (i32.const 4))
                  (then
                    (local.set $a0 (f32x4.mul (local.get $a0) (local.get $sv)))
                    (local.set $a1 (f32x4.mul (local.get $a1) (local.get $sv)))
                    (local.set $a2 (f32x4.mul (local.get $a2) (local.get $sv)))
                    (local.set $a3 (f32x4.mul (local.get $a3) (local.get $sv)))))
                (v128.store (i32.add (local.get $sum) (local.get $p)) (local.get $a0))
                (v128.store offset=16 (i32.add (local.get $sum) (local.get $p)) (local.get $a1))
                (v128.store offset=32 (i32.add (local.get $sum) (local.get $p)) (local.get $a2))
                (v128.store offset=48 (i32.add (local.get $sum) (local.get $p)) (local.get $a3))))
            (local.set $c (i32.add (local.get $c) (i32.const 64)))
            (br $s16)))
        ;; strips of 4 columns
        (block $s4done
          (loop $s4
            (br_if $s4done (i32.ge_u (local.get $c) (local.get $rowBytes)))
            (local.set $a0 (v128.const f32x4 0 0 0 0))
            (local.set $k (local.get $k0))
            (block $kd4
              (loop $kl4
                (br_if $kd4 (i32.ge_u (local.get $k) (local.get $k1)))
                (local.set $a0
                  (f32x4.add (local.get $a0)
                    (f32x4.mul
                      (f32x4.splat (f32.load (i32.add (local.get $values) (i32.shl (local.get $k) (i32.const 2)))))
                      (v128.load
                        (i32.add (i32.add (local.get $x) (local.get $c))
                          (i32.mul (i32.load (i32.add (local.get $indices) (i32.shl (local.get $k) (i32.const 2)))) (local.get $rowBytes)))))))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))
                (br $kl4)))
            (local.set $p (i32.add (i32.mul (local.get $r) (local.get $rowBytes)) (local.get $c)))
            (if (i32.and (local.get $mode) (i32.const 1))
              (then (local.set $a0 (f32x4.add (local.get $a0) (v128.load (i32.add (local.get $add) (local.get $p)))))))
            (v128.store (i32.add (local.get $out) (local.get $p)) (local.get $a0))
            (if (i32.and (local.get $mode) (i32.const 2))
              (then
                (local.set $a0 (f32x4.add (v128.load (i32.add (local.get $sum) (local.get $p))) (local.get $a0)))
                (if (i32.and (local.get $mode) (i32.const 4))
                  (then (local.set $a0 (f32x4.mul (local.get $a0) (local.get $sv)))))
                (v128.store (i32.add (local.get $sum) (local.get $p)) (local.get $a0))))
            (local.set $c (i32.add (local.get $c) (i32.const 16)))
            (br $s4)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rl))))

;; out[r·K + k] = a[r·K + k, :] · b[r, :] for r < rows, k < K (d floats a row, d a multiple of 4).
  (func (export "row_dots")
    (param $out i32) (param $a i32) (param $b i32) (param $rows i32) (param $k i32) (param $d i32)
    (local $r i32) (local $j i32) (local $i i32) (local $rowBytes i32) (local $bp i32) (local $ap i32) (local $acc v128)
    (local.set $rowBytes (i32.shl (local.get $d) (i32.const 2)))
    (block $done
      (loop $rl
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $bp (i32.add (local.get $b) (i32.mul (local.get $r) (local.get $rowBytes))))
        (local.set $j (i32.const 0))
        (block $jd
          (loop $jl
            (br_if $jd (i32.ge_u (local.get $j) (local.get $k)))
            (local.set $ap (i32.add (local.get $a) (i32.mul (i32.add (i32.mul (local.get $r) (local.get $k)) (local.get $j)) (local.get $rowBytes))))
            (local.set $acc (v128.const f32x4 0 0 0 0))
            (local.set $i (i32.const 0))
            (block $id
              (loop $il
                (br_if $id (i32.ge_u (local.get $i) (local.get $rowBytes)))
                (local.set $acc (f32x4.add (local.get $acc)
                  (f32x4.mul (v128.load (i32.add (local.get $ap) (local.get $i))) (v128.load (i32.add (local.get $bp) (local.get $i))))))
                (local.set $i (i32.add (local.get $i) (i32.const 16)))
                (br $il)))
            (f32.store
              (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $k)) (local.get $j)) (i32.const 2)))
              (f32.add
                (f32.add (f32x4.extract_lane 0 (local.get $acc)) (f32x4.extract_lane 1 (local.get $acc)))
                (f32.add (f32x4.extract_lane 2 (local.get $acc)) (f32x4.extract_lane 3 (local.get $acc)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $jl)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rl))))

  ;; The gradients of row_dots given dz [rows·K]: da[r·K + k, :] = dz[r·K + k]·b[r, :] and
  ;; db[r, :] = Σ_k dz[r·K + k]·a[r·K + k, :]; an output at offset 0 (NULL: never a tensor's) is skipped.
  (func (export "row_dots_grad")
    (param $da i32) (param $db i32) (param $dz i32) (param $a i32) (param $b i32) (param $rows i32) (param $k i32) (param $d i32)
    (local $r i32) (local $j i32) (local $i i32) (local $rowBytes i32) (local $bp i32) (local $ap i32) (local $dap i32) (local $dbp i32) (local $w v128) (local $bv v128)
    (local.set $rowBytes (i32.shl (local.get $d) (i32.const 2)))
    (if (local.get $db) (then (memory.fill (local.get $db) (i32.const 0) (i32.mul (local.get $rows) (local.get $rowBytes)))))
    (block $done
      (loop $rl
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $bp (i32.add (local.get $b) (i32.mul (local.get $r) (local.get $rowBytes))))
        (local.set $dbp (i32.add (local.get $db) (i32.mul (local.get $r) (local.get $rowBytes))))
        (local.set $j (i32.const 0))
        (block $jd
          (loop $jl
            (br_if $jd (i32.ge_u (local.get $j) (local.get $k)))
            (local.set $ap (i32.mul (i32.add (i32.mul (local.get $r) (local.get $k)) (local.get $j)) (local.get $rowBytes)))
            (local.set $dap (i32.add (local.get $da) (local.get $ap)))
            (local.set $ap (i32.add (local.get $a) (local.get $ap)))
            (local.set $w (f32x4.splat (f32.load
              (i32.add (local.get $dz) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $k)) (local.get $j)) (i32.const 2))))))
            (local.set $i (i32.const 0))
            (block $id
              (loop $il
                (br_if $id (i32.ge_u (local.get $i) (local.get $rowBytes)))
                (if (local.get $da)
                  (then
                    (local.set $bv (v128.load (i32.add (local.get $bp) (local.get $i))))
                    (v128.store (i32.add (local.get $dap) (local.get $i)) (f32x4.mul (local.get $w) (local.get $bv)))))
                (if (local.get $db)
                  (then
                    (v128.store (i32.add (local.get $dbp) (local.get $i))
                      (f32x4.add (v128.load (i32.add (local.get $dbp) (local.get $i)))
                        (f32x4.mul (local.get $w) (v128.load (i32.add (local.get $ap) (local.get $i))))))))
                (local.set $i (i32.add (local.get $i) (i32.const 16)))
                (br $il)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $jl)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rl))))

;; out[cols] = Σ_r x[r, :], rows summed in order (the sum over axis 0 of a matrix: a bias gradient).
  (func (export "col_sum")
    (param $out i32) (param $x i32) (param $rows i32) (param $cols i32)
    (local $r i32) (local $rowBytes i32)
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    (memory.fill (local.get $out) (i32.const 0) (local.get $rowBytes))
    (block $done
      (loop $rl
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        (call $axpy (local.get $out) (i32.add (local.get $x) (i32.mul (local.get $r) (local.get $rowBytes))) (f32.const 1) (local.get $cols))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rl))))

  ;; out[n] = x[n] · s, n a multiple of 4.
  (func (export "scale")
    (param $out i32) (param $x i32) (param $n i32) (param $s f32)
    (local $end i32) (local $sv v128)
    (local.set $sv (f32x4.splat (local.get $s)))
    (local.set $end (i32.add (local.get $out) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $out) (local.get $end)))
        (v128.store (local.get $out) (f32x4.mul (v128.load (local.get $x)) (local.get $sv)))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (br $l))))

  ;; out[numSegments, cols] = Σ_r x[r] into row ids[r]; ids outside [0, numSegments) are dropped.
  (func (export "segment_sum")
    (param $out i32) (param $x i32) (param $ids i32) (param $rows i32) (param $cols i32) (param $numSegments i32)
    (local $r i32) (local $s i32) (local $rowBytes i32)
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    (memory.fill (local.get $out) (i32.const 0) (i32.mul (local.get $numSegments) (local.get $rowBytes)))
    (block $done
      (loop $rl
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $s (i32.load (i32.add (local.get $ids) (i32.shl (local.get $r) (i32.const 2)))))
        (if (i32.lt_u (local.get $s) (local.get $numSegments))
          (then
            (call $axpy
              (i32.add (local.get $out) (i32.mul (local.get $s) (local.get $rowBytes)))
              (i32.add (local.get $x) (i32.mul (local.get $r) (local.get $rowBytes)))
              (f32.const 1)
              (local.get $cols))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rl))))

  ;; out[rows, cols] = x[ids[r], :] for each r (ids are checked by the caller).
  (func (export "gather_rows")
    (param $out i32) (param $x i32) (param $ids i32) (param $rows i32) (param $cols i32)
    (local $r i32) (local $rowBytes i32)
    (local.set $rowBytes (i32.shl (local.get $cols) (i32.const 2)))
    (block $done
      (loop $rl
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        (memory.copy
          (i32.add (local.get $out) (i32.mul (local.get $r) (local.get $rowBytes)))
          (i32.add (local.get $x)
            (i32.mul (i32.load (i32.add (local.get $ids) (i32.shl (local.get $r) (i32.const 2))))
                     (local.get $rowBytes)))
          (local.get $rowBytes))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rl))))

  ;; One Adam step over n floats, in one pass (tfjs's Adam makes ~10 passes):
  ;;   m' = b1·m + (1−b1)·g;  v' = b2·v + (1−b2)·g²;  x' = x − lr·c1·m' / (eps + sqrt(c2·v'))
  ;; with c1 = 1/(1−b1^t), c2 = 1/(1−b2^t). Outputs go to ox, om, ov.
  (func (export "adam")
    (param $x i32) (param $g i32) (param $m i32) (param $v i32)
    (param $ox i32) (param $om i32) (param $ov i32) (param $n i32)
    (param $lr f32) (param $b1 f32) (param $b2 f32) (param $eps f32) (param $c1 f32) (param $c2 f32)
    (local $i i32) (local $end4 i32) (local $off i32)
    (local $gv v128) (local $mv v128) (local $vv v128)
    (local $gs f32) (local $ms f32) (local $vs f32)
    (local.set $end4 (i32.and (local.get $n) (i32.const -4)))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $end4)))
        (local.set $off (i32.shl (local.get $i) (i32.const 2)))
        (local.set $gv (v128.load (i32.add (local.get $g) (local.get $off))))
        (local.set $mv
          (f32x4.add
            (f32x4.mul (f32x4.splat (local.get $b1)) (v128.load (i32.add (local.get $m) (local.get $off))))
            (f32x4.mul (f32x4.splat (f32.sub (f32.const 1) (local.get $b1))) (local.get $gv))))
        (local.set $vv
          (f32x4.add
            (f32x4.mul (f32x4.splat (local.get $b2)) (v128.load (i32.add (local.get $v) (local.get $off))))
            (f32x4.mul (f32x4.splat (f32.sub (f32.const 1) (local.get $b2))) (f32x4.mul (local.get $gv) (local.get $gv)))))
        (v128.store (i32.add (local.get $om) (local.get $off)) (local.get $mv))
        (v128.store (i32.add (local.get $ov) (local.get $off)) (local.get $vv))
        (v128.store (i32.add (local.get $ox) (local.get $off))
          (f32x4.sub
            (v128.load (i32.add (local.get $x) (local.get $off)))
            (f32x4.div
              (f32x4.mul (f32x4.splat (f32.mul (local.get $lr) (local.get $c1))) (local.get $mv))
              (f32x4.add (f32x4.splat (local.get $eps))
                         (f32x4.sqrt (f32x4.mul (f32x4.splat (local.get $c2)) (local.get $vv)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $l)))
    ;; the last n mod 4 values
    (block $tdone
      (loop $t
        (br_if $tdone (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $off (i32.shl (local.get $i) (i32.const 2)))
        (local.set $gs (f32.load (i32.add (local.get $g) (local.get $off))))
        (local.set $ms (f32.add (f32.mul (local.get $b1) (f32.load (i32.add (local.get $m) (local.get $off))))
                                (f32.mul (f32.sub (f32.const 1) (local.get $b1)) (local.get $gs))))
        (local.set $vs (f32.add (f32.mul (local.get $b2) (f32.load (i32.add (local.get $v) (local.get $off))))
                                (f32.mul (f32.sub (f32.const 1) (local.get $b2)) (f32.mul (local.get $gs) (local.get $gs)))))
        (f32.store (i32.add (local.get $om) (local.get $off)) (local.get $ms))
        (f32.store (i32.add (local.get $ov) (local.get $off)) (local.get $vs))
        (f32.store (i32.add (local.get $ox) (local.get $off))
          (f32.sub (f32.load (i32.add (local.get $x) (local.get $off)))
            (f32.div (f32.mul (f32.mul (local.get $lr) (local.get $c1)) (local.get $ms))
                     (f32.add (local.get $eps) (f32.sqrt (f32.mul (local.get $c2) (local.get $vs)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $t)))
  )
)
