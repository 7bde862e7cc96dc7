package pydatetime

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// oracleAlphabet holds the pieces random oracle inputs are made of.
var oracleAlphabet = []string{
	"0", "1", "2", "3", "5", "9", "12", "00", "2017", "-", "-", ":", ":", ".", ",",
	"T", " ", "Z", "+", "W", "\n", "\t", "x", "\x00", "\u0662", "é", "\u3000", "\x1c",
}

// oracleSeeds are mutated to produce most oracle inputs.
var oracleSeeds = []string{
	"2017-06-01T12:00:00.123456+05:30", "20170601T120000Z", "2017-W01-1T12:00",
	"2017-6-1 1:2:3,4-0130", "2017W011T1200+01", "2017-06-01T12:00:00.1234567Z",
}

// TestOracle compares Parse with Python on the table inputs and on random
// strings. It runs only when FLAGPROXY_PYDATETIME_ORACLE names a Python
// 3.11 interpreter that can import Django 3.2, e.g. /usr/bin/python3.
func TestOracle(t *testing.T) {
	python := os.Getenv("FLAGPROXY_PYDATETIME_ORACLE")
	if python == "" {
		t.Skip("set FLAGPROXY_PYDATETIME_ORACLE=/usr/bin/python3 to compare with Python")
	}
	inputs := oracleInputs(oracleCount())
	results := runOracle(t, python, inputs)
	bad, kinds := 0, map[string]int{}
	for i, in := range inputs {
		got := [2]string{encode(Parse(in, 3, 2)), encode(Parse(in, 4, 2))}
		kinds["3.2 "+strings.Fields(got[0])[0]]++
		kinds["4.2 "+strings.Fields(got[1])[0]]++
		if got != results[i] && bad < 30 {
			bad++
			t.Errorf("%q: Go %q, Python %q", in, got, results[i])
		}
	}
	t.Logf("compared %d inputs with Python: %v", len(inputs), kinds)
}

// oracleInputs returns the table inputs followed by n random strings; all
// are valid UTF-8, which is all a Python str can hold.
func oracleInputs(n int) []string {
	var inputs []string
	for _, tc := range parseTable {
		inputs = append(inputs, tc.in)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for len(inputs) < len(parseTable)+n {
		s := mutate(r, oracleSeeds[r.IntN(len(oracleSeeds))])
		if utf8.ValidString(s) {
			inputs = append(inputs, s)
		}
	}
	return inputs
}

// mutate applies a few random edits of whole runes to s.
func mutate(r *rand.Rand, s string) string {
	rs := []rune(s)
	for k := r.IntN(4); k >= 0; k-- {
		i := r.IntN(len(rs) + 1)
		piece := []rune(oracleAlphabet[r.IntN(len(oracleAlphabet))])
		switch r.IntN(3) {
		case 0: // insert
			rs = append(rs[:i], append(piece, rs[i:]...)...)
		case 1: // delete
			if i < len(rs) {
				rs = append(rs[:i], rs[i+1:]...)
			}
		default: // replace
			if i < len(rs) {
				rs = append(rs[:i], append(piece, rs[i+1:]...)...)
			}
		}
	}
	return string(rs)
}

// runOracle runs oracleScript over inputs.
func runOracle(t *testing.T, python string, inputs []string) [][2]string {
	t.Helper()
	in, err := json.Marshal(inputs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", oracleScript)
	cmd.Stdin = bytes.NewReader(in)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", python, err, stderr.String())
	}
	var results [][2]string
	if err := json.Unmarshal(out, &results); err != nil || len(results) != len(inputs) {
		t.Fatalf("oracle output: %v (%d results for %d inputs)", err, len(results), len(inputs))
	}
	return results
}

// oracleCount is the number of random oracle inputs:
// FLAGPROXY_PYDATETIME_ORACLE_N, or 20000.
func oracleCount() int {
	if n, err := strconv.Atoi(os.Getenv("FLAGPROXY_PYDATETIME_ORACLE_N")); err == nil {
		return n
	}
	return 20000
}
