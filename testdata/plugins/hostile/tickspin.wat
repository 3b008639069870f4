;; Build: wat2wasm tickspin.wat -o tickspin.wasm   (or ../build.sh for every fixture)
;;
;; tickspin: a hostile plugin (ABI 1.3, features metrics and tick, no
;; capabilities) whose every tick answers More with nothing pending and no
;; write: it asks for another tick at once, forever. The host ticks again
;; at once only a few times per tick interval, and Close does not keep
;; ticking it for its whole flush.
;; Ping and configure are OK; any other op is unsupported.
(module
  (memory (export "memory") 4)
  ;; Metadata, 20 bytes: abi 1.3, name "tickspin", version "1.0.0",
  ;; features 0x101 (metrics, tick), no capabilities.
  (data (i32.const 0x000) "\01\03" "\08tickspin" "\051.0.0" "\81\02" "\00")
  (data (i32.const 0x040) "\00")
  (data (i32.const 0x0a0) "\05" "unsupported op")
  ;; the tick answer: OK, more 1, pending 0, count 0
  (data (i32.const 0x10000) "\00" "\01" "\00" "\00")
  ;; one TickWrite, 16 bytes
  (data (i32.const 0x0c0) "\0a" "\01a" "\01m" "\00\00\00\00\00\00\00\00" "\02" "\00" "\00")
  (global $built (mut i32) (i32.const 0))
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  (func $build (local $i i32)
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $i) (i32.const 4096)))
      (memory.copy (i32.add (i32.const 0x10005) (i32.mul (local.get $i) (i32.const 16))) (i32.const 0x0c0) (i32.const 16))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (global.set $built (i32.const 1)))
  (func (export "storage_abi_version") (result i32) (i32.const 0x00010003))
  (func (export "storage_metadata") (result i64) (call $pack (i32.const 0) (i32.const 20)))
  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0x800)) (then unreachable))
    (i32.const 0x1000))
  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (if (i32.le_u (local.get $op) (i32.const 2)) (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    (if (i32.eq (local.get $op) (i32.const 3))
      (then
        (if (i32.eqz (global.get $built)) (then (call $build)))
        (return (call $pack (i32.const 0x10000) (i32.const 4)))))
    (call $pack (i32.const 0x0a0) (i32.const 15)))
)
