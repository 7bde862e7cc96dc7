// Package overrides will turn a request into engine.Overrides: feature-flipper's
// URL (?enable_x) and session (?session_enable_x, ?session_clear_features)
// overrides, checked against the visitor's flip permission, stored in
// flagproxy's own signed and encrypted cookie. It is not implemented yet:
// today every visitor gets no overrides (see README.md, "Not yet").
package overrides
