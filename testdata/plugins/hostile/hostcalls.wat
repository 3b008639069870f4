;; Build: wat2wasm hostcalls.wat -o hostcalls.wasm   (or ../build.sh for every fixture)
;;
;; hostcalls: a hostile plugin that abuses the host functions: regions out
;; of bounds, a kv result it never asked for, and floods of calls. Each host
;; function must refuse by trapping the call (never reading or writing out
;; of bounds), and Limits.MaxHostCalls must end a flood.
;;
;; Features: agent_states; capabilities: log, clock, kv.
;; storage_call(get agent state), by the first byte of the agent ID:
;;   'l'  storagehost_log.write, message at 0x7fff0000 (past memory)
;;   'L'  storagehost_log.write, message of 0xffffffff bytes at 0
;;   'W'  storagehost_log.write, message of 0x20 bytes at 0xfffffff0 (wraps)
;;   'q'  storagehost_kv.call, request at 0x7fff0000
;;   'S'  storagehost_kv.call, a request of 3 bytes at 0xfffe passed length
;;        first (a pointer and length swapped)
;;   'o'  storagehost_kv.call of a valid get, output at 0x7fff0000, capacity 256
;;   'w'  storagehost_kv.call of a valid get, output of 16 at 0xfffffff8 (wraps)
;;   'r'  storagehost_kv.result with no result pending
;;   'R'  storagehost_kv.call with capacity 0 (so the result is pending),
;;        then storagehost_kv.result into 0x7fff0000
;;   'c'  storagehost_clock.now 1 000 000 times, then OK
;;   'k'  storagehost_kv.call (a get) 1 000 000 times, then OK
;;   'f'  storagehost_clock.now forever
;;   'g'  storagehost_clock.now 900 times, then OK: under a limit of 1000
;;   'P'  storagehost_kv.call of a valid put of key "p", output at 0x7fff0000:
;;        the call must trap before the put is applied
;;   'Q'  storagehost_kv.call of a valid get of key "p": the state of 'Q'
;;        when the key is there, NOT_FOUND when it is not
;; A get that returns answers OK with the AgentState of the agent it asked for (a one-byte ID).
;; Ping and configure are OK; any other op is unsupported.
(module
  (import "storagehost_log" "write"
    (func $log_write (param $level i32) (param $ptr i32) (param $len i32)))
  (import "storagehost_clock" "now"
    (func $clock_now (result i64)))
  (import "storagehost_kv" "call"
    (func $kv_call (param $req_ptr i32) (param $req_len i32)
                   (param $out_ptr i32) (param $out_cap i32) (result i32)))
  (import "storagehost_kv" "result"
    (func $kv_result (param $out_ptr i32) (param $out_cap i32) (result i32)))

  (memory (export "memory") 1)

  ;; Metadata, 33 bytes: abi 1.0, name "hostcalls", version "1.0.0",
  ;; features 4 (agent_states), capabilities [log, clock, kv].
  (data (i32.const 0x000) "\01\00" "\09hostcalls" "\051.0.0" "\04" "\03" "\03log" "\05clock" "\02kv")
  ;; OK with an empty body.
  (data (i32.const 0x040) "\00")
  ;; OK with the AgentState {agent_id "x"}, 7 bytes; the ID is set to the one asked for.
  (data (i32.const 0x048) "\00" "\01x" "\00" "\00" "\00" "\00")
  ;; A kv get of key "k", 3 bytes: op 1, key.
  (data (i32.const 0x060) "\01" "\01k")
  ;; Unsupported, 15 bytes.
  (data (i32.const 0x080) "\05" "unsupported op")
  ;; A kv put of key "p", value "v", no expiry, no condition, 8 bytes.
  (data (i32.const 0x0a0) "\02" "\01p" "\01v" "\00" "\00" "\00")
  ;; A kv get of key "p", 3 bytes.
  (data (i32.const 0x0b0) "\01" "\01p")
  ;; Not found, 12 bytes.
  (data (i32.const 0x0c0) "\01" "no record p")

  (global $REQ_BASE i32 (i32.const 0x1000))
  ;; Where a valid kv answer would go.
  (global $KV_OUT i32 (i32.const 0x200))
  (global $FAR i32 (i32.const 0x7fff0000))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func $clock_times (param $n i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $n)))
        (drop (call $clock_now))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $more))))

  (func $kv_times (param $n i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $n)))
        (drop (call $kv_call (i32.const 0x060) (i32.const 3) (global.get $KV_OUT) (i32.const 256)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $more))))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 33)))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0xf000))
      (then unreachable))
    (global.get $REQ_BASE))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (local $sel i32)
    ;; OpPing (1), OpConfigure (2)
    (if (i32.or (i32.eq (local.get $op) (i32.const 1)) (i32.eq (local.get $op) (i32.const 2)))
      (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    (if (i32.ne (local.get $op) (i32.const 31)) ;; OpGetAgentState
      (then (return (call $pack (i32.const 0x080) (i32.const 15)))))
    ;; The request is the agent ID, a string.
    (local.set $sel (i32.load8_u (i32.add (global.get $REQ_BASE) (i32.const 1))))
    (if (i32.eq (local.get $sel) (i32.const 0x6c)) ;; 'l'
      (then (call $log_write (i32.const 3) (global.get $FAR) (i32.const 5))))
    (if (i32.eq (local.get $sel) (i32.const 0x4c)) ;; 'L'
      (then (call $log_write (i32.const 3) (i32.const 0) (i32.const 0xffffffff))))
    (if (i32.eq (local.get $sel) (i32.const 0x57)) ;; 'W'
      (then (call $log_write (i32.const 3) (i32.const 0xfffffff0) (i32.const 0x20))))
    (if (i32.eq (local.get $sel) (i32.const 0x71)) ;; 'q'
      (then (drop (call $kv_call (global.get $FAR) (i32.const 3) (global.get $KV_OUT) (i32.const 256)))))
    (if (i32.eq (local.get $sel) (i32.const 0x53)) ;; 'S'
      (then (drop (call $kv_call (i32.const 3) (i32.const 0xfffe) (global.get $KV_OUT) (i32.const 256)))))
    (if (i32.eq (local.get $sel) (i32.const 0x6f)) ;; 'o'
      (then (drop (call $kv_call (i32.const 0x060) (i32.const 3) (global.get $FAR) (i32.const 256)))))
    (if (i32.eq (local.get $sel) (i32.const 0x77)) ;; 'w'
      (then (drop (call $kv_call (i32.const 0x060) (i32.const 3) (i32.const 0xfffffff8) (i32.const 16)))))
    (if (i32.eq (local.get $sel) (i32.const 0x72)) ;; 'r'
      (then (drop (call $kv_result (global.get $KV_OUT) (i32.const 256)))))
    (if (i32.eq (local.get $sel) (i32.const 0x52)) ;; 'R'
      (then
        (drop (call $kv_call (i32.const 0x060) (i32.const 3) (global.get $KV_OUT) (i32.const 0)))
        (drop (call $kv_result (global.get $FAR) (i32.const 256)))))
    (if (i32.eq (local.get $sel) (i32.const 0x63)) ;; 'c'
      (then (call $clock_times (i32.const 1000000))))
    (if (i32.eq (local.get $sel) (i32.const 0x6b)) ;; 'k'
      (then (call $kv_times (i32.const 1000000))))
    (if (i32.eq (local.get $sel) (i32.const 0x66)) ;; 'f'
      (then
        (loop $forever
          (drop (call $clock_now))
          (br $forever))))
    (if (i32.eq (local.get $sel) (i32.const 0x67)) ;; 'g'
      (then (call $clock_times (i32.const 900))))
    (if (i32.eq (local.get $sel) (i32.const 0x50)) ;; 'P'
      (then (drop (call $kv_call (i32.const 0x0a0) (i32.const 8) (global.get $FAR) (i32.const 256)))))
    (if (i32.eq (local.get $sel) (i32.const 0x51)) ;; 'Q'
      (then
        (drop (call $kv_call (i32.const 0x0b0) (i32.const 3) (global.get $KV_OUT) (i32.const 256)))
        (if (i32.load8_u (global.get $KV_OUT)) ;; not OK: no record
          (then (return (call $pack (i32.const 0x0c0) (i32.const 12)))))))
    ;; The answer is the state of the agent asked for: its one-byte ID.
    (i32.store8 (i32.const 0x04a) (local.get $sel))
    (call $pack (i32.const 0x048) (i32.const 7)))
)
