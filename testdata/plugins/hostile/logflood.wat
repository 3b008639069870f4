;; Build: wat2wasm logflood.wat -o logflood.wasm   (or ../build.sh for every fixture)
;;
;; logflood: a hostile plugin that floods the host's log, through
;; storagehost_log.write and through WASI stdout (fd_write), and writes
;; lines far longer than any log should hold. Its calls succeed: the host
;; rate-limits the lines (Limits.LogLinesPerSecond, counting the dropped
;; ones in a later warning) and truncates long ones (Limits.MaxLogLineBytes).
;;
;; Features: agent_states; capabilities: log (WASI needs no grant).
;; storage_call(get agent state), by the first byte of the agent ID:
;;   'f'  10 000 x storagehost_log.write "logflood: flood line"
;;   'w'  10 000 x fd_write(stdout, "logflood: wasi flood line\n")
;;   'W'  one fd_write(stdout) of 10 000 lines "x\n"
;;   'T'  storagehost_log.write of one line of 10 000 'A'
;;   'U'  fd_write(stdout) of 10 000 'B' and a newline
;;   'V'  fd_write(stdout) of 10 000 'C' and no newline
;; then answers OK with the AgentState of the agent it asked for (a one-byte ID).
;; Ping logs "logflood: ping" through storagehost_log.write and is OK;
;; configure is OK; any other op is unsupported.
(module
  (import "storagehost_log" "write"
    (func $log_write (param $level i32) (param $ptr i32) (param $len i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param $fd i32) (param $iovs i32) (param $iovs_len i32)
                    (param $nwritten i32) (result i32)))

  (memory (export "memory") 1)

  ;; Metadata, 23 bytes: abi 1.0, name "logflood", version "1.0.0",
  ;; features 4 (agent_states), capabilities [log].
  (data (i32.const 0x000) "\01\00" "\08logflood" "\051.0.0" "\04" "\01" "\03log")
  ;; OK with an empty body.
  (data (i32.const 0x040) "\00")
  ;; OK with the AgentState {agent_id "x"}, 7 bytes; the ID is set to the one asked for.
  (data (i32.const 0x048) "\00" "\01x" "\00" "\00" "\00" "\00")
  ;; Unsupported, 15 bytes.
  (data (i32.const 0x060) "\05" "unsupported op")
  (data (i32.const 0x080) "logflood: flood line")             ;; 20 bytes
  (data (i32.const 0x0a0) "logflood: wasi flood line\n")      ;; 26 bytes
  (data (i32.const 0x0c0) "logflood: ping")                   ;; 14 bytes

  (global $REQ_BASE i32 (i32.const 0x1000))
  ;; One iovec {ptr, len} at $IOV; fd_write's count of bytes at $NWRITTEN.
  (global $IOV i32 (i32.const 0x200))
  (global $NWRITTEN i32 (i32.const 0x210))
  ;; Long lines are built at $LONG (up to 10 001 bytes), the 20 000 bytes
  ;; of "x\n" lines at $LINES; both below the end of the first page.
  (global $LONG i32 (i32.const 0x4000))
  (global $LINES i32 (i32.const 0x8000))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  ;; Writes $len bytes at $ptr to stdout.
  (func $stdout (param $ptr i32) (param $len i32)
    (i32.store (global.get $IOV) (local.get $ptr))
    (i32.store (i32.add (global.get $IOV) (i32.const 4)) (local.get $len))
    (drop (call $fd_write (i32.const 1) (global.get $IOV) (i32.const 1) (global.get $NWRITTEN))))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 23)))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0x3000))
      (then unreachable))
    (global.get $REQ_BASE))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (local $sel i32) (local $i i32)
    ;; OpPing (1)
    (if (i32.eq (local.get $op) (i32.const 1))
      (then
        (call $log_write (i32.const 3) (i32.const 0x0c0) (i32.const 14))
        (return (call $pack (i32.const 0x040) (i32.const 1)))))
    ;; OpConfigure (2)
    (if (i32.eq (local.get $op) (i32.const 2))
      (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    (if (i32.ne (local.get $op) (i32.const 31)) ;; OpGetAgentState
      (then (return (call $pack (i32.const 0x060) (i32.const 15)))))
    ;; The request is the agent ID, a string.
    (local.set $sel (i32.load8_u (i32.add (global.get $REQ_BASE) (i32.const 1))))
    (if (i32.eq (local.get $sel) (i32.const 0x66)) ;; 'f'
      (then
        (local.set $i (i32.const 10000))
        (loop $more
          (call $log_write (i32.const 3) (i32.const 0x080) (i32.const 20))
          (local.set $i (i32.sub (local.get $i) (i32.const 1)))
          (br_if $more (local.get $i)))))
    (if (i32.eq (local.get $sel) (i32.const 0x77)) ;; 'w'
      (then
        (local.set $i (i32.const 10000))
        (loop $more
          (call $stdout (i32.const 0x0a0) (i32.const 26))
          (local.set $i (i32.sub (local.get $i) (i32.const 1)))
          (br_if $more (local.get $i)))))
    (if (i32.eq (local.get $sel) (i32.const 0x57)) ;; 'W'
      (then
        (local.set $i (i32.const 0))
        (loop $more
          ;; "x\n" as a little-endian u16
          (i32.store16 (i32.add (global.get $LINES) (i32.shl (local.get $i) (i32.const 1)))
                       (i32.const 0x0a78))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $more (i32.lt_u (local.get $i) (i32.const 10000))))
        (call $stdout (global.get $LINES) (i32.const 20000))))
    (if (i32.eq (local.get $sel) (i32.const 0x54)) ;; 'T'
      (then
        (memory.fill (global.get $LONG) (i32.const 0x41) (i32.const 10000))
        (call $log_write (i32.const 3) (global.get $LONG) (i32.const 10000))))
    (if (i32.eq (local.get $sel) (i32.const 0x55)) ;; 'U'
      (then
        (memory.fill (global.get $LONG) (i32.const 0x42) (i32.const 10000))
        (i32.store8 (i32.add (global.get $LONG) (i32.const 10000)) (i32.const 0x0a))
        (call $stdout (global.get $LONG) (i32.const 10001))))
    (if (i32.eq (local.get $sel) (i32.const 0x56)) ;; 'V'
      (then
        (memory.fill (global.get $LONG) (i32.const 0x43) (i32.const 10000))
        (call $stdout (global.get $LONG) (i32.const 10000))))
    ;; The answer is the state of the agent asked for: its one-byte ID.
    (i32.store8 (i32.const 0x04a) (local.get $sel))
    (call $pack (i32.const 0x048) (i32.const 7)))
)
