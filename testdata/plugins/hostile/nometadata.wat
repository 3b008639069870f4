;; Build: wat2wasm nometadata.wat -o nometadata.wasm   (or ../build.sh for every fixture)
;;
;; nometadata: storage_metadata returns an empty region, as a Go plugin
;; that never called sdk.Register does. The host's load error says the
;; plugin describes nothing (host/metadata_test.go,
;; TestLoadErrorsNameTheMistake).
(module
  (memory (export "memory") 1)

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (i64.const 0))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (i32.const 1024))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (i64.const 0))
)
