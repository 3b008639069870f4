;; Build: wat2wasm ticktrap.wat -o ticktrap.wasm   (or ../build.sh for every fixture)
;;
;; ticktrap: a hostile plugin (ABI 1.3, features metrics and tick, no
;; capabilities) whose every tick traps, with nobody calling it: the host
;; discards the instance and makes another for the next tick. The host
;; waits longer after each round of such failures, up to a minute, so the
;; plugin costs it a few calls, not ten a second, and logs its discards
;; within the backend's rate.
;; Ping and configure are OK; any other op is unsupported.
(module
  (memory (export "memory") 4)
  ;; Metadata, 20 bytes: abi 1.3, name "ticktrap", version "1.0.0",
  ;; features 0x101 (metrics, tick), no capabilities.
  (data (i32.const 0x000) "\01\03" "\08ticktrap" "\051.0.0" "\81\02" "\00")
  (data (i32.const 0x040) "\00")
  (data (i32.const 0x0a0) "\05" "unsupported op")
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  (func (export "storage_abi_version") (result i32) (i32.const 0x00010003))
  (func (export "storage_metadata") (result i64) (call $pack (i32.const 0) (i32.const 20)))
  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0x800)) (then unreachable))
    (i32.const 0x1000))
  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (if (i32.le_u (local.get $op) (i32.const 2)) (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    (if (i32.eq (local.get $op) (i32.const 3)) (then unreachable))
    (call $pack (i32.const 0x0a0) (i32.const 15)))
)
