;; Build: wat2wasm nocall.wat -o nocall.wasm   (or ../build.sh for every fixture)
;;
;; nocall: a module without storage_call, the export every operation
;; goes through, whose _initialize would trap. The host refuses it for
;; its bytes before running anything, as a file's error, not a run's
;; (host/metadata_test.go, TestLoadErrorsNameTheMistake;
;; cmd/storage-host/internal/config, TestDeferPluginRuns).
(module
  (memory (export "memory") 1)

  (func (export "_initialize")
    unreachable)

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (i64.const 0))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (i32.const 1024)))
