;; Build: wat2wasm logforge.wat -o logforge.wasm   (or ../build.sh for every fixture)
;;
;; logforge: a hostile plugin whose log messages and error messages are
;; made to forge lines of the host's log: newlines followed by lines in the
;; host's own format about another backend, a carriage return, ANSI escape
;; sequences, a NUL, bytes that are not UTF-8, a C1 control (NEL), a line
;; separator, a bidirectional override and a tab. The host writes each
;; message as one line, attributed to this backend, every character that
;; is not printable escaped; newlines do not multiply the lines the rate
;; limit (Limits.LogLinesPerSecond) lets through.
;;
;; Features: agent_states; capabilities: log.
;; storage_call(get agent state), by the first byte of the agent ID:
;;   'L'  one storagehost_log.write at level error of the forged message
;;   'N'  1000 x storagehost_log.write at level info of 4096 newlines
;;        (the default Limits.MaxLogLineBytes)
;;   'E'  no log: answers INTERNAL with the forged message as its error
;; then answers OK with the AgentState of the agent it asked for (a one-byte ID).
;; Ping and configure are OK; any other op is unsupported.
(module
  (import "storagehost_log" "write" (func $log (param i32 i32 i32)))

  (memory (export "memory") 2)

  ;; Metadata, 23 bytes: abi 1.0, name "logforge", version "1.0.0",
  ;; features 4 (agent_states), capabilities [log].
  (data (i32.const 0x000) "\01\00" "\08logforge" "\051.0.0" "\04" "\01" "\03log")
  ;; OK with an empty body.
  (data (i32.const 0x040) "\00")
  ;; OK with the AgentState {agent_id "x" (filled in at 0x082), state of
  ;; 8 zero bytes, version 0, times unset}, 15 bytes.
  (data (i32.const 0x080) "\00" "\01x" "\08" "\00\00\00\00\00\00\00\00" "\00" "\00" "\00")
  ;; Unsupported, 15 bytes.
  (data (i32.const 0x0a0) "\05" "unsupported op")
  ;; INTERNAL, then the forged message (287 bytes) at 0x2000.
  (data (i32.const 0x1fff) "\06")
  (data (i32.const 0x2000) "\68\65\6c\6c\6f\0a\32\30\32\36\2d\31\32\2d\30\34\54\30\31\3a\30\32\3a\30\33\2e\34\35\36\5a\20\5b\45\52\52\4f\52\5d\20\73\74\6f\72\61\67\65\2d\68\6f\73\74\2e\70\6c\75\67\69\6e\2e\62\69\6c\6c\69\6e\67\3a\20\70\6c\75\67\69\6e\20\69\6e\73\74\61\6e\63\65\20\64\69\73\63\61\72\64\65\64\3a\20\6f\70\3d\70\75\74\5f\61\67\65\6e\74\5f\73\74\61\74\65\20\65\72\72\6f\72\3d\22\64\69\73\6b\20\66\75\6c\6c\22\0a\32\30\32\36\2d\31\32\2d\30\34\54\30\31\3a\30\32\3a\30\33\2e\34\35\37\5a\20\5b\49\4e\46\4f\5d\20\20\73\74\6f\72\61\67\65\2d\68\6f\73\74\3a\20\62\61\63\6b\65\6e\64\20\62\69\6c\6c\69\6e\67\20\72\65\6c\6f\61\64\65\64\3a\20\70\6c\75\67\69\6e\3d\62\75\69\6c\74\69\6e\3a\6d\65\6d\6f\72\79\0d\1b\5b\32\4a\1b\5b\33\31\6d\52\45\44\1b\5b\30\6d\20\00\4e\55\4c\20\ff\fe\20\69\6e\76\61\6c\69\64\2d\75\74\66\38\20\c2\85\6e\65\6c\20\e2\80\a8\6c\73\20\e2\80\ae\72\74\6c\09\74\61\62")

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func (export "storage_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "storage_metadata") (result i64) (call $pack (i32.const 0) (i32.const 23)))

  ;; Requests land at 0x1000; none is longer than 2 KiB.
  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0x800)) (then unreachable))
    (i32.const 0x1000))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (local $i i32)
    (local $id i32)
    ;; configure (0), ping (1), close (2): OK.
    (if (i32.le_u (local.get $op) (i32.const 2))
      (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    ;; Anything but get agent state (31) is unsupported.
    (if (i32.ne (local.get $op) (i32.const 31))
      (then (return (call $pack (i32.const 0x0a0) (i32.const 15)))))
    ;; The request is the agent ID, length-prefixed: its byte is at 0x1001.
    (local.set $id (i32.load8_u (i32.const 0x1001)))
    (if (i32.eq (local.get $id) (i32.const 0x45)) ;; 'E'
      (then (return (call $pack (i32.const 0x1fff) (i32.const 288)))))
    (if (i32.eq (local.get $id) (i32.const 0x4e)) ;; 'N'
      (then
        (memory.fill (i32.const 0x8000) (i32.const 10) (i32.const 4096))
        (block $done (loop $next
          (br_if $done (i32.ge_u (local.get $i) (i32.const 1000)))
          (call $log (i32.const 3) (i32.const 0x8000) (i32.const 4096))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next)))))
    (if (i32.eq (local.get $id) (i32.const 0x4c)) ;; 'L'
      (then (call $log (i32.const 5) (i32.const 0x2000) (i32.const 287))))
    (i32.store8 (i32.const 0x082) (local.get $id))
    (call $pack (i32.const 0x080) (i32.const 15)))
)
