;; Build: wat2wasm migbig.wat -o migbig.wasm
;; migbig: a postgres plugin (ABI 1.5) whose storage_migrations answers
;; one migration of 5 MiB of SQL (NUL bytes): more bytes than a
;; Migrations may hold (abi.MaxMigrationsBytes), refused before it is
;; decoded. Its other exports do nothing useful.
(module
  (memory (export "memory") 96)
  ;; Metadata: ABI 1.5, name "migbig", version "1", features 4
  ;; (agent_states), capabilities [postgres].
  (data (i32.const 0x000) "\01\05" "\06migbig" "\011" "\04" "\01" "\08postgres")
  (data (i32.const 0x040) "\00")
  ;; Migrations at 0x10000: count 1, version 1, the SQL's length 5 MiB
  ;; (5 242 880 as a uvarint), then the SQL, which memory holds as zeros.
  (data (i32.const 0x10000) "\01" "\01" "\80\80\c0\02")

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func (export "storage_abi_version") (result i32) (i32.const 0x00010005))
  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 22)))
  (func (export "storage_reserve") (param $size i32) (result i32) (i32.const 0x1000))
  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (call $pack (i32.const 0x040) (i32.const 1)))
  (func (export "storage_migrations") (result i64)
    (call $pack (i32.const 0x10000) (i32.const 5242886)))
)
