;; Build: wat2wasm hiddenmemory.wat -o hiddenmemory.wasm   (or ../build.sh for every fixture)
;;
;; hiddenmemory: a complete plugin whose linear memory is not exported.
;; The ABI requires the export "memory" (section 4), so the host refuses
;; it at load with ErrIncompatible saying so, although it could reach the
;; memory without the export (host/metadata_test.go,
;; TestLoadErrorsNameTheMistake).
(module
  (memory 1)
  (data (i32.const 0) "\01\00" "\0chiddenmemory" "\051.0.0" "\04" "\00")
  (data (i32.const 64) "\00")

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 23)))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (i32.const 1024))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (call $pack (i32.const 64) (i32.const 1)))
)
