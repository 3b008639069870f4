;; Build: wat2wasm loop.wat -o loop.wasm   (or ../build.sh for every fixture)
;;
;; loop: a hostile plugin that never returns, from each export the host
;; calls. Only an interruption stops it: Limits.CallTimeout (the watchdog,
;; or the instantiation deadline for _initialize) or the caller's context.
;;
;; Features: agent_states; capabilities: log, clock.
;; Triggers, so that a test chooses when it misbehaves:
;;   storage_call(get agent state)   logs "loop: spinning in storage_call",
;;                                   then spins in `loop br 0`
;;   storage_reserve(size >= 64 KiB) spins (a put of a large document)
;;   host clock at -1 ns             _initialize spins
;;   host clock at -2 ns             storage_metadata spins
;;   host clock at -3 ns             configure spins
;; Ping and configure are otherwise OK; any other op is unsupported.
(module
  (import "storagehost_log" "write"
    (func $log_write (param $level i32) (param $ptr i32) (param $len i32)))
  (import "storagehost_clock" "now"
    (func $clock_now (result i64)))

  (memory (export "memory") 1)

  ;; Metadata, 25 bytes: abi 1.0, name "loop", version "1.0.0",
  ;; features 4 (agent_states), capabilities [log, clock].
  (data (i32.const 0x000) "\01\00" "\04loop" "\051.0.0" "\04" "\02" "\03log" "\05clock")
  ;; OK with an empty body.
  (data (i32.const 0x040) "\00")
  ;; Unsupported, 47 bytes.
  (data (i32.const 0x080) "\05" "loop: only ping, configure and get agent state")
  ;; The log line before spinning, 30 bytes.
  (data (i32.const 0x100) "loop: spinning in storage_call")

  ;; Requests go to 0x1000, in the first page: this plugin never reads
  ;; them, and is never sent one of 60 KiB or more that it does not spin on.
  (global $REQ_BASE i32 (i32.const 0x1000))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  ;; Never returns: one back-edge, no calls, nothing for the host to see.
  (func $spin
    (loop $forever (br $forever)))

  (func $spin_if_clock (param $at i64)
    (if (i64.eq (call $clock_now) (local.get $at))
      (then (call $spin))))

  (func (export "_initialize")
    (call $spin_if_clock (i64.const -1)))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (call $spin_if_clock (i64.const -2))
    (call $pack (i32.const 0) (i32.const 25)))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.ge_u (local.get $size) (i32.const 0x10000))
      (then (call $spin)))
    (global.get $REQ_BASE))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    ;; OpConfigure (2)
    (if (i32.eq (local.get $op) (i32.const 2))
      (then
        (call $spin_if_clock (i64.const -3))
        (return (call $pack (i32.const 0x040) (i32.const 1)))))
    ;; OpPing (1)
    (if (i32.eq (local.get $op) (i32.const 1))
      (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    ;; OpGetAgentState (31)
    (if (i32.eq (local.get $op) (i32.const 31))
      (then
        (call $log_write (i32.const 3) (i32.const 0x100) (i32.const 30))
        (call $spin)))
    (call $pack (i32.const 0x080) (i32.const 47)))
)
