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
