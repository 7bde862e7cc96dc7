package pyre

import "fmt"

// Error describes why a pattern was refused. Its Unwrap returns ErrSyntax
// when Python's re would raise too, or ErrUnsupported when Python would
// accept the pattern but this package cannot reproduce it exactly.
type Error struct {
	kind error
	// Msg is Python's message (or, for ErrUnsupported, the reason).
	Msg string
	// Pos is the code-point offset in the pattern, or -1 when unknown.
	Pos int
}

// Error returns the message with its position.
func (e *Error) Error() string {
	if e.Pos < 0 {
		return fmt.Sprintf("%v: %s", e.kind, e.Msg)
	}
	return fmt.Sprintf("%v: %s at position %d", e.kind, e.Msg, e.Pos)
}

// Unwrap returns ErrSyntax or ErrUnsupported.
func (e *Error) Unwrap() error { return e.kind }

// syntaxErr returns an ErrSyntax error at pos.
func syntaxErr(msg string, pos int) *Error { return &Error{kind: ErrSyntax, Msg: msg, Pos: pos} }

// unsupported returns an ErrUnsupported error at pos.
func unsupported(msg string, pos int) *Error {
	return &Error{kind: ErrUnsupported, Msg: msg, Pos: pos}
}

// tokenizer mirrors Lib/re/_parser.py's Tokenizer: a token is one code
// point, or a backslash and the code point after it.
type tokenizer struct {
	s     []rune
	index int
	next  string // "" means None
}

// newTokenizer starts a tokenizer on s.
func newTokenizer(s []rune) (*tokenizer, *Error) {
	t := &tokenizer{s: s}
	return t, t.advance()
}

// advance reads the next token into t.next.
func (t *tokenizer) advance() *Error {
	i := t.index
	if i >= len(t.s) {
		t.next = ""
		return nil
	}
	ch := string(t.s[i])
	if t.s[i] == '\\' {
		i++
		if i >= len(t.s) {
			return syntaxErr("bad escape (end of pattern)", len(t.s)-1)
		}
		ch += string(t.s[i])
	}
	t.index = i + 1
	t.next = ch
	return nil
}

// match consumes the next token if it equals tok.
func (t *tokenizer) match(tok string) (bool, *Error) {
	if t.next != "" && t.next == tok {
		return true, t.advance()
	}
	return false, nil
}

// get consumes and returns the next token ("" at the end).
func (t *tokenizer) get() (string, *Error) {
	this := t.next
	return this, t.advance()
}

// getwhile consumes up to n tokens (any number if n < 0) that are single
// characters of set.
func (t *tokenizer) getwhile(n int, set string) (string, *Error) {
	res := ""
	for i := 0; n < 0 || i < n; i++ {
		if !isOneOf(t.next, set) {
			break
		}
		res += t.next
		if err := t.advance(); err != nil {
			return "", err
		}
	}
	return res, nil
}

// getuntil consumes tokens up to terminator and returns them joined.
func (t *tokenizer) getuntil(term, name string) (string, *Error) {
	res := ""
	for {
		c := t.next
		if err := t.advance(); err != nil {
			return "", err
		}
		if c == "" {
			if res == "" {
				return "", t.error("missing "+name, 0)
			}
			return "", t.error(fmt.Sprintf("missing %s, unterminated name", term), runeLen(res))
		}
		if c == term {
			if res == "" {
				return "", t.error("missing "+name, 1)
			}
			return res, nil
		}
		res += c
	}
}

// tell returns the position of the next token.
func (t *tokenizer) tell() int { return t.index - runeLen(t.next) }

// seek moves to index and reads the token there.
func (t *tokenizer) seek(index int) *Error {
	t.index = index
	return t.advance()
}

// error returns a syntax error offset code points before the next token.
func (t *tokenizer) error(msg string, offset int) *Error {
	return syntaxErr(msg, t.tell()-offset)
}

// runeLen returns the number of code points in s.
func runeLen(s string) int { return len([]rune(s)) }

// isOneOf reports whether tok is a single character found in set.
func isOneOf(tok, set string) bool {
	r := []rune(tok)
	if len(r) != 1 {
		return false
	}
	for _, c := range set {
		if c == r[0] {
			return true
		}
	}
	return false
}

const (
	digits      = "0123456789"
	octDigits   = "01234567"
	hexDigits   = "0123456789abcdefABCDEF"
	asciiLetter = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	whitespace  = " \t\n\r\v\f"
)
