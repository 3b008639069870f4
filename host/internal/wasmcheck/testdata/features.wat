;; Build: wat2wasm features.wat -o features.wasm
;;
;; features: one of each instruction form whose immediates differ, from
;; WebAssembly 2.0 (multi-value block types, sign extension, saturating
;; truncation, bulk memory, reference types, SIMD lanes and memory
;; arguments). TestFeatures checks that wasmcheck walks it, measures the
;; nesting depth below, and that wazero compiles it.
(module
  (type $pair (func (param i32) (result i32 i32)))
  (type $unary (func (param i32) (result i32)))
  (import "env" "f" (func $imported (param i32) (result i32)))
  (memory 1 2)
  (table $t 4 8 funcref)
  (table $ext 1 externref)
  (global $g (mut i32) (i32.const 0))
  (global $v v128 (v128.const i64x2 1 2))
  (global $r funcref (ref.func $scalar))
  (elem declare func $scalar)
  (elem $seg (table $t) (i32.const 0) func $scalar $vector)
  (elem $passive funcref (ref.func $scalar) (ref.null func))
  (data $d "hello")
  (data (i32.const 16) "world")
  (export "memory" (memory 0))
  (export "scalar" (func $scalar))

  (func $scalar (param $x i32) (result i32)
    (local $l i64) (local f32 f64)
    ;; depth 6 (the body is 1): block, block, loop, if of a multi-value
    ;; type with a parameter, block
    (block $out (result i32)
      (block $mid (result i32)
        (loop $again
          local.get $x
          local.get $x
          if (type $pair) (param i32) (result i32 i32)
            (block (param i32) (result i32 i32) (i32.const 1))
          else
            (i32.const 3)
          end
          i32.add
          local.get $x
          br_table $out $mid $out)
        (i32.const 0)))
    (drop)
    (call_indirect $t (type $unary) (local.get $x) (i32.const 0))
    (drop)
    (select (result i64) (i64.const -1) (i64.const 9223372036854775807) (local.get $x))
    (local.set $l)
    (f32.const 1.5) (local.set 2)
    (f64.const -2.25) (local.set 3)
    (i32.store offset=4 align=2 (i32.const 0) (i32.load8_u offset=7 (i32.const 1)))
    (drop (memory.grow (memory.size)))
    (drop (i32.extend8_s (i32.const 200)))
    (drop (i32.trunc_sat_f32_s (f32.const 3e9)))
    (memory.init $d (i32.const 0) (i32.const 0) (i32.const 5))
    (data.drop $d)
    (memory.copy (i32.const 8) (i32.const 0) (i32.const 4))
    (memory.fill (i32.const 0) (i32.const 0) (i32.const 1))
    (table.init $t $passive (i32.const 2) (i32.const 0) (i32.const 2))
    (elem.drop $passive)
    (table.copy $t $t (i32.const 0) (i32.const 1) (i32.const 1))
    (drop (table.grow $t (ref.null func) (i32.const 1)))
    (drop (table.size $ext))
    (table.fill $t (i32.const 0) (ref.func $scalar) (i32.const 1))
    (table.set $t (i32.const 1) (table.get $t (i32.const 0)))
    (drop (ref.is_null (ref.null extern)))
    (global.set $g (i32.add (global.get $g) (call $imported (local.get $x))))
    (local.tee $x (local.get $x))
    (return))

  (func $vector (param i32) (result i32)
    (local $v v128)
    (local.set $v (v128.load offset=16 align=8 (i32.const 0)))
    (local.set $v (v128.load8x8_s (i32.const 0)))
    (local.set $v (v128.load32_splat (i32.const 0)))
    (local.set $v (v128.load32_zero offset=4 (i32.const 0)))
    (local.set $v (v128.load16_lane offset=2 3 (i32.const 0) (local.get $v)))
    (v128.store64_lane 1 (i32.const 0) (local.get $v))
    (v128.store (i32.const 32) (local.get $v))
    (local.set $v (i8x16.shuffle 0 17 2 19 4 21 6 23 8 25 10 27 12 29 14 31 (local.get $v) (v128.const i32x4 1 2 3 4)))
    (local.set $v (i32x4.replace_lane 2 (local.get $v) (i32x4.extract_lane 1 (local.get $v))))
    (local.set $v (f64x2.add (local.get $v) (f64x2.splat (f64x2.extract_lane 0 (local.get $v)))))
    (local.set $v (i8x16.swizzle (local.get $v) (i16x8.narrow_i32x4_s (local.get $v) (local.get $v))))
    (drop (i16x8.extract_lane_u 7 (local.get $v)))
    (i32x4.extract_lane 0 (i32x4.dot_i16x8_s (local.get $v) (local.get $v))))
)
