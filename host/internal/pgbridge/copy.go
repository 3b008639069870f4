package pgbridge

// COPY's data does not travel as a statement's results: PostgreSQL
// answers `COPY … FROM STDIN` with a CopyInResponse and then waits for the
// client's rows, `COPY … TO STDOUT` with a CopyOutResponse and the rows as
// CopyData, a sub-protocol neither the bridge's pipelines nor a
// migration's script speak. Sent anyway, a request's COPY broke its
// pipeline after PostgreSQL had run (and, for a transaction request,
// committed) the statements around it, and was answered outcome-unknown;
// a migration's `COPY … FROM STDIN` held the connection and the schema's
// advisory lock until the load's deadline. Both are refused before
// anything is sent. COPY to or from a server file or program is refused
// by PostgreSQL itself (the role is no member of pg_read_server_files,
// pg_write_server_files or pg_execute_server_program); it is refused here
// too, as every COPY is.

// errCopy answers a request with a COPY statement.
const errCopy = "is a COPY, which the bridge does not run (its rows would travel in PostgreSQL's copy sub-protocol, not as results): use INSERT … VALUES or INSERT … SELECT, and SELECT; nothing of the request was sent"

// hasCopy reports whether sql, one statement or a script of several, has
// a statement that is a COPY: one whose first word, past white space and
// comments, is COPY. It reads quoted strings, quoted identifiers and
// dollar-quoted bodies as PostgreSQL does, so that a semicolon or the word
// COPY inside one counts for nothing; and since a backslash escapes a
// quote in a plain string too where standard_conforming_strings is off
// (which a migration may set for the ones after it, or the role for its
// sessions), it reads the text both ways and finds a COPY in either.
func hasCopy(sql []byte) bool {
	return findCopy(sql, false) || findCopy(sql, true)
}

// leadsWithCopy reports whether the one statement sql is a COPY: its first
// word, past white space and comments. A request's statement is one
// command (PostgreSQL refuses a text of several: 42601), so that word is
// all there is to read of it.
func leadsWithCopy(sql []byte) bool {
	return isWord(sql[skipSpace(sql, 0):], "copy")
}

// findCopy is hasCopy's reading of sql, with backslash escapes in every
// string (backslashes) or only in E'…' strings.
func findCopy(sql []byte, backslashes bool) bool {
	atStart := true // no word yet in the statement being read
	for i := skipSpace(sql, 0); i < len(sql); i = skipSpace(sql, i) {
		c := sql[i]
		if c == ';' {
			atStart = true
			i++
			continue
		}
		if atStart {
			if isWord(sql[i:], "copy") {
				return true
			}
			atStart = false
		}
		switch {
		case c == '\'':
			escapes := backslashes || i > 0 && (sql[i-1] == 'e' || sql[i-1] == 'E') && (i == 1 || !isIdentByte(sql[i-2]))
			i = skipQuoted(sql, i, '\'', escapes)
		case c == '"':
			i = skipQuoted(sql, i, '"', false)
		case c == '$' && (i == 0 || !isIdentByte(sql[i-1])):
			i = skipDollarQuoted(sql, i)
		default:
			i++
		}
	}
	return false
}

// skipSpace returns the index of the first byte from i on that is
// neither white space nor in a comment (a -- comment ends at a line feed
// or a carriage return; /* */ ones nest).
func skipSpace(sql []byte, i int) int {
	for i < len(sql) {
		switch c := sql[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' && sql[i] != '\r' {
				i++
			}
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			i = skipBlockComment(sql, i)
		default:
			return i
		}
	}
	return i
}

// isWord reports whether b starts with the keyword w (lower case), in any
// case, followed by something that cannot continue an identifier.
func isWord(b []byte, w string) bool {
	if len(b) < len(w) {
		return false
	}
	for i := range len(w) {
		if b[i]|0x20 != w[i] {
			return false
		}
	}
	return len(b) == len(w) || !isIdentByte(b[len(w)])
}

// isIdentByte reports whether c may continue an unquoted identifier (any
// byte of a multi-byte UTF-8 character may).
func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || '0' <= c && c <= '9' || 'a' <= c|0x20 && c|0x20 <= 'z'
}

// skipBlockComment returns the index past the /* … */ comment at i,
// nested ones included, or len(sql) when it does not end.
func skipBlockComment(sql []byte, i int) int {
	depth := 0
	for i < len(sql) {
		switch {
		case sql[i] == '/' && i+1 < len(sql) && sql[i+1] == '*':
			depth++
			i += 2
		case sql[i] == '*' && i+1 < len(sql) && sql[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return i
}

// skipQuoted returns the index past the string or identifier quoted by q
// that starts at i (a doubled quote stands for one); with escapes, a
// backslash escapes the byte after it.
func skipQuoted(sql []byte, i int, q byte, escapes bool) int {
	for i++; i < len(sql); i++ {
		switch {
		case escapes && sql[i] == '\\':
			i++
		case sql[i] == q:
			if i+1 < len(sql) && sql[i+1] == q {
				i++
				continue
			}
			return i + 1
		}
	}
	return i
}

// skipDollarQuoted returns the index past the dollar-quoted body ($$…$$,
// $tag$…$tag$) that starts at i, or i+1 when the dollar sign at i does not
// open one (a parameter such as $1).
func skipDollarQuoted(sql []byte, i int) int {
	j := i + 1
	for j < len(sql) && sql[j] != '$' {
		c := sql[j]
		if !isIdentByte(c) || c == '$' || j == i+1 && '0' <= c && c <= '9' {
			return i + 1
		}
		j++
	}
	if j == len(sql) {
		return i + 1
	}
	tag := sql[i : j+1]
	for k := j + 1; k+len(tag) <= len(sql); k++ {
		if sql[k] == '$' && string(sql[k:k+len(tag)]) == string(tag) {
			return k + len(tag)
		}
	}
	return len(sql)
}
