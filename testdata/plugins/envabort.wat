;; Build: wat2wasm envabort.wat -o envabort.wasm   (or ../build.sh for every fixture)
;;
;; envabort: an AssemblyScript module built without the SDK's abort
;; handler imports env.abort (message, file, line, column), which no host
;; provides. It does not load, and the error says how to build it.
(module
  (import "env" "abort" (func $abort (param i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\01\00\08envabort\051.0.0\00\00")
  (func (export "storage_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "storage_metadata") (result i64) (i64.const 18))
  (func (export "storage_reserve") (param i32) (result i32) (i32.const 1024))
  (func (export "storage_call") (param i32 i32) (result i64)
    (call $abort (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (i64.const 0))
)
