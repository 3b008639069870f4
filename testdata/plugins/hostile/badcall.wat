;; Build: wat2wasm badcall.wat -o badcall.wasm   (or ../build.sh for every fixture)
;;
;; badcall: a plugin whose storage_call takes three parameters instead of
;; two. Its handshake and metadata are valid, so only the export's type
;; is wrong: the host refuses it at load, naming the type the ABI gives
;; (host/metadata_test.go, TestLoadErrorsNameTheMistake; `validate`,
;; cmd/storage-host/internal/config, TestPluginOfTheWrongShape).
;;
;; Features: agent_states; capabilities: none.
(module
  (memory (export "memory") 1)

  ;; Metadata, 18 bytes: abi 1.0, name "badcall", version "1.0.0",
  ;; features 4 (agent_states), no capabilities.
  (data (i32.const 0x000) "\01\00" "\07badcall" "\051.0.0" "\04" "\00")
  ;; OK with an empty body.
  (data (i32.const 0x040) "\00")

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (i64.const 18))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (i32.const 0x1000))

  (func (export "storage_call") (param $op i32) (param $len i32) (param $extra i32) (result i64)
    (i64.or (i64.shl (i64.const 0x040) (i64.const 32)) (i64.const 1)))
)
