package pyre

import "unicode"

// parseFlags is _parse_flags after "(?" and its first character. global is
// true for a "(?flags)" group, which sets the pattern's flags.
func (ps *parser) parseFlags(char string) (add, del flagSet, global bool, err *Error) {
	src := ps.src
	if char != "-" {
		for {
			flag := flagLetters[char]
			if char == "L" {
				return 0, 0, false, src.error("bad inline flags: cannot use 'L' flag with a str pattern", 0)
			}
			add |= flag
			if flag&typeFlags != 0 && add&typeFlags != flag {
				return 0, 0, false, src.error("bad inline flags: flags 'a', 'u' and 'L' are incompatible", 0)
			}
			if char, err = src.get(); err != nil {
				return 0, 0, false, err
			}
			if char == "" {
				return 0, 0, false, src.error("missing -, : or )", 0)
			}
			if isOneOf(char, ")-:") {
				break
			}
			if flagLetters[char] == 0 {
				return 0, 0, false, src.error(flagMsg(char, "missing -, : or )"), runeLen(char))
			}
		}
	}
	if char == ")" {
		ps.st.flags |= add
		return add, 0, true, nil
	}
	if add&globalFlags != 0 {
		return 0, 0, false, src.error("bad inline flags: cannot turn on global flag", 1)
	}
	if char == "-" {
		if del, err = ps.parseDelFlags(); err != nil {
			return 0, 0, false, err
		}
	}
	if add&del != 0 {
		return 0, 0, false, src.error("bad inline flags: flag turned on and off", 1)
	}
	return add, del, false, nil
}

// parseDelFlags reads the flags after '-' up to ':'.
func (ps *parser) parseDelFlags() (del flagSet, err *Error) {
	src := ps.src
	char, err := src.get()
	if err != nil {
		return 0, err
	}
	if char == "" {
		return 0, src.error("missing flag", 0)
	}
	if flagLetters[char] == 0 {
		return 0, src.error(flagMsg(char, "missing flag"), runeLen(char))
	}
	for {
		flag := flagLetters[char]
		if flag&typeFlags != 0 {
			return 0, src.error("bad inline flags: cannot turn off flags 'a', 'u' and 'L'", 0)
		}
		del |= flag
		if char, err = src.get(); err != nil {
			return 0, err
		}
		if char == "" {
			return 0, src.error("missing :", 0)
		}
		if char == ":" {
			break
		}
		if flagLetters[char] == 0 {
			return 0, src.error(flagMsg(char, "missing :"), runeLen(char))
		}
	}
	if del&globalFlags != 0 {
		return 0, src.error("bad inline flags: cannot turn off global flag", 1)
	}
	return del, nil
}

// flagMsg is "unknown flag" for a letter (str.isalpha) and other otherwise.
func flagMsg(char, other string) string {
	r := []rune(char)
	if len(r) == 1 && unicode.IsLetter(r[0]) {
		return "unknown flag"
	}
	return other
}
