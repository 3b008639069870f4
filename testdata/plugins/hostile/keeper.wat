;; Build: wat2wasm keeper.wat -o keeper.wasm   (or ../build.sh for every fixture)
;;
;; keeper: a plugin that keeps a record in the backend's kv store, traps on
;; demand, and answers a write with a body that does not decode. Records in
;; kv belong to the backend, not to the instance that wrote them, so they
;; outlive a trap; an answer that does not decode writes nothing in the host.
;;
;; Features: agent_states; capabilities: kv.
;; storage_call(put agent state), by the first byte of the agent ID:
;;   'w'  OK, the AgentState {agent_id "w", version 1}, then one trailing
;;        byte: malformed
;;   's'  OK, the AgentState {agent_id "s", version 1}
;;   'b'  STALE, the AgentState {agent_id "b", version 1}: acknowledged
;;        into a buffer, which a plugin without the tick feature (this
;;        one, ABI 1.0) may not answer
;; storage_call(get agent state), by the first byte of the agent ID:
;;   'w'  OK, the AgentState {agent_id "w", state "old", version 1}
;;   'p'  kv put of "row" = "kept", then OK, the AgentState {agent_id "p"};
;;        traps if the put is not OK
;;   'r'  kv get of "row": when it is "kept", OK, the AgentState
;;        {agent_id "r", state "kept"}; else NOT_FOUND "no row"
;;   'x'  traps (unreachable)
;; Ping and configure are OK; any other op is unsupported.
(module
  (import "storagehost_kv" "call"
    (func $kv_call (param $req_ptr i32) (param $req_len i32)
                   (param $out_ptr i32) (param $out_cap i32) (result i32)))

  (memory (export "memory") 1)

  ;; Metadata, 20 bytes: abi 1.0, name "keeper", version "1.0.0",
  ;; features 4 (agent_states), capabilities [kv].
  (data (i32.const 0x000) "\01\00" "\06keeper" "\051.0.0" "\04" "\01" "\02kv")
  ;; OK with an empty body.
  (data (i32.const 0x040) "\00")
  ;; Unsupported, 15 bytes.
  (data (i32.const 0x0a0) "\05" "unsupported op")
  ;; Answers.
  (data (i32.const 0x200) "\00" "\01w" "\00" "\01" "\00" "\00" "\00")    ;; put 'w', 8 bytes
  (data (i32.const 0x210) "\00" "\01s" "\00" "\01" "\00" "\00")          ;; put 's', 7 bytes
  (data (i32.const 0x218) "\08" "\01b" "\00" "\01" "\00" "\00")          ;; put 'b', STALE, 7 bytes
  (data (i32.const 0x220) "\00" "\01w" "\03old" "\01" "\00" "\00")       ;; get 'w', 10 bytes
  (data (i32.const 0x240) "\00" "\01p" "\00" "\00" "\00" "\00")          ;; get 'p', 7 bytes
  (data (i32.const 0x250) "\00" "\01r" "\04kept" "\00" "\00" "\00")      ;; get 'r', 11 bytes
  (data (i32.const 0x260) "\01" "no row")                                ;; NOT_FOUND, 7 bytes
  ;; kv requests: put "row" = "kept" (expires_at 0, keep_ttl false,
  ;; unconditional), 13 bytes; get "row", 5 bytes.
  (data (i32.const 0x300) "\02" "\03row" "\04kept" "\00" "\00" "\00")
  (data (i32.const 0x320) "\01" "\03row")

  (global $REQ_BASE i32 (i32.const 0x1000))
  ;; Where kv answers go, 256 bytes.
  (global $OUT i32 (i32.const 0x100))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 20)))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0xe000))
      (then unreachable))
    (global.get $REQ_BASE))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (local $sel i32) (local $n i32) (local $end i32)
    ;; OpPing (1), OpConfigure (2)
    (if (i32.or (i32.eq (local.get $op) (i32.const 1)) (i32.eq (local.get $op) (i32.const 2)))
      (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    ;; Both requests start with the agent ID, a string.
    (local.set $sel (i32.load8_u (i32.add (global.get $REQ_BASE) (i32.const 1))))
    ;; OpPutAgentState (30)
    (if (i32.eq (local.get $op) (i32.const 30))
      (then
        (if (i32.eq (local.get $sel) (i32.const 0x77)) ;; 'w'
          (then (return (call $pack (i32.const 0x200) (i32.const 8)))))
        (if (i32.eq (local.get $sel) (i32.const 0x73)) ;; 's'
          (then (return (call $pack (i32.const 0x210) (i32.const 7)))))
        (if (i32.eq (local.get $sel) (i32.const 0x62)) ;; 'b'
          (then (return (call $pack (i32.const 0x218) (i32.const 7)))))))
    ;; OpGetAgentState (31)
    (if (i32.eq (local.get $op) (i32.const 31))
      (then
        (if (i32.eq (local.get $sel) (i32.const 0x77)) ;; 'w'
          (then (return (call $pack (i32.const 0x220) (i32.const 10)))))
        (if (i32.eq (local.get $sel) (i32.const 0x70)) ;; 'p'
          (then
            (drop (call $kv_call (i32.const 0x300) (i32.const 13) (global.get $OUT) (i32.const 256)))
            (if (i32.load8_u (global.get $OUT))
              (then unreachable))
            (return (call $pack (i32.const 0x240) (i32.const 7)))))
        (if (i32.eq (local.get $sel) (i32.const 0x72)) ;; 'r'
          (then
            ;; The answer is status, revision, expires_at, then the value:
            ;; its last 5 bytes are "\04kept" when the record is there.
            (local.set $n (call $kv_call (i32.const 0x320) (i32.const 5) (global.get $OUT) (i32.const 256)))
            (if (i32.and
                  (i32.and (i32.ge_u (local.get $n) (i32.const 6)) (i32.le_u (local.get $n) (i32.const 256)))
                  (i32.eqz (i32.load8_u (global.get $OUT))))
              (then
                (local.set $end (i32.add (global.get $OUT) (local.get $n)))
                (if (i32.and
                      (i32.eq (i32.load8_u (i32.sub (local.get $end) (i32.const 5))) (i32.const 4))
                      (i32.eq (i32.load (i32.sub (local.get $end) (i32.const 4))) (i32.const 0x7470656b)))
                  (then (return (call $pack (i32.const 0x250) (i32.const 11)))))))
            (return (call $pack (i32.const 0x260) (i32.const 7)))))
        (if (i32.eq (local.get $sel) (i32.const 0x78)) ;; 'x'
          (then unreachable))))
    (call $pack (i32.const 0x0a0) (i32.const 15)))
)
