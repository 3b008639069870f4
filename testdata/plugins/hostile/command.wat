;; Build: wat2wasm command.wat -o command.wasm   (or ../build.sh for every fixture)
;;
;; command: what a Go plugin built without -buildmode=c-shared looks like
;; to the host: a WASI command exporting _start and no _initialize, whose
;; exports trap because its runtime was never initialised. The host's
;; load error says how to build a reactor (host/metadata_test.go,
;; TestLoadErrorsNameTheMistake).
(module
  (memory (export "memory") 1)

  (func (export "_start"))

  (func (export "storage_abi_version") (result i32)
    (unreachable))

  (func (export "storage_metadata") (result i64)
    (unreachable))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (unreachable))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (unreachable))
)
