;; Build: wat2wasm tickwork.wat -o tickwork.wasm   (or ../build.sh for every fixture)
;;
;; tickwork: tickterm (its twin) with work before the end: every tick
;; sends one batch, a statement that holds its session 0.3 s (pg_sleep,
;; standing for a heavy query), then pg_terminate_backend of its own
;; session, and answers OK, nothing pending, with nobody calling it. The
;; bridge answers UNKNOWN (sent, the connection lost): the store's time
;; would pass for a wait on a silent store. The host leaves it out of the
;; round's rest only for the first round in a minute to lose an answer;
;; later ones rest nine times it, as for a tick's own time.
;; Ping and configure are OK; any other op is unsupported.
(module
  (import "storagehost_postgres" "call" (func $pg (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 4)
  ;; Metadata, 29 bytes: abi 1.5, name "tickwork", version "1.0.0",
  ;; features 0x101 (metrics, tick), capabilities ["postgres"].
  (data (i32.const 0x000) "\01\05" "\08tickwork" "\051.0.0" "\81\02" "\01" "\08postgres")
  (data (i32.const 0x040) "\00")
  (data (i32.const 0x0a0) "\05" "unsupported op")
  ;; the tick answer: OK, more 0, pending 0, count 0
  (data (i32.const 0x0c0) "\00" "\00" "\00" "\00")
  ;; PGRequest, 71 bytes: mode 1 (batch), 2 statements, each its SQL and
  ;; no parameters.
  (data (i32.const 0x1000) "\01" "\02"
    "\14" "SELECT pg_sleep(0.3)" "\00"
    "\2d" "SELECT pg_terminate_backend(pg_backend_pid())" "\00")
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  (func (export "storage_abi_version") (result i32) (i32.const 0x00010005))
  (func (export "storage_metadata") (result i64) (call $pack (i32.const 0) (i32.const 29)))
  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0x800)) (then unreachable))
    (i32.const 0x400))
  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (if (i32.le_u (local.get $op) (i32.const 2)) (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    (if (i32.eq (local.get $op) (i32.const 3))
      (then
        (drop (call $pg (i32.const 0x1000) (i32.const 71) (i32.const 0x10000) (i32.const 0x20000)))
        (return (call $pack (i32.const 0x0c0) (i32.const 4)))))
    (call $pack (i32.const 0x0a0) (i32.const 15)))
)
