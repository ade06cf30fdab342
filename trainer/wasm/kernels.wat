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
)
