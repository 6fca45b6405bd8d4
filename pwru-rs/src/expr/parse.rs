//! The expression grammar of [`super`]: tokens, then a small recursive-descent parser.

use super::{ExprError, MAX_STRING};

/// One step of an access after its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Arrow(String),
    Dot(String),
    Index(u64),
}

/// `root { part }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessExpr {
    pub root: String,
    pub parts: Vec<Part>,
}

impl AccessExpr {
    /// The access written out up to (not including) part `upto`: the part an error names.
    pub fn text_upto(&self, upto: usize) -> String {
        let mut s = self.root.clone();
        for part in &self.parts[..upto.min(self.parts.len())] {
            match part {
                Part::Arrow(n) => {
                    s.push_str("->");
                    s.push_str(n);
                }
                Part::Dot(n) => {
                    s.push('.');
                    s.push_str(n);
                }
                Part::Index(i) => s.push_str(&format!("[{i}]")),
            }
        }
        s
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Literal {
    Int(i128),
    String(Vec<u8>),
}

/// `access [& mask] [op literal]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterAst {
    pub access: AccessExpr,
    pub mask: Option<i128>,
    pub compare: Option<(CmpOp, Literal)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Int(i128),
    Str(Vec<u8>),
    Arrow,
    Dot,
    LBracket,
    RBracket,
    Amp,
    Cmp(CmpOp),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Int(v) => format!("'{v}'"),
            Tok::Str(_) => "a string".into(),
            Tok::Arrow => "'->'".into(),
            Tok::Dot => "'.'".into(),
            Tok::LBracket => "'['".into(),
            Tok::RBracket => "']'".into(),
            Tok::Amp => "'&'".into(),
            Tok::Cmp(op) => format!("'{op}'"),
        }
    }
}

struct Lexer<'a> {
    expr: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Lexer<'a> {
    fn error(&self, at: usize, message: impl Into<String>) -> ExprError {
        ExprError::Syntax {
            expr: self.expr.to_owned(),
            column: at + 1,
            message: message.into(),
        }
    }

    /// All tokens with their start positions.
    fn tokens(mut self) -> Result<Vec<(usize, Tok)>, ExprError> {
        let mut out = Vec::new();
        loop {
            while self.at < self.bytes.len() && self.bytes[self.at].is_ascii_whitespace() {
                self.at += 1;
            }
            let Some(&c) = self.bytes.get(self.at) else {
                return Ok(out);
            };
            let start = self.at;
            let next = self.bytes.get(self.at + 1).copied();
            let tok = match c {
                b'-' if next == Some(b'>') => {
                    self.at += 2;
                    Tok::Arrow
                }
                b'.' => self.one(Tok::Dot),
                b'[' => self.one(Tok::LBracket),
                b']' => self.one(Tok::RBracket),
                b'&' if next == Some(b'&') => {
                    return Err(self.error(start, "'&&' is not supported (one test per expression)"))
                }
                b'&' => self.one(Tok::Amp),
                b'|' => return Err(self.error(start, "'|' is not supported")),
                b'=' if next == Some(b'=') => self.two(Tok::Cmp(CmpOp::Eq)),
                b'!' if next == Some(b'=') => self.two(Tok::Cmp(CmpOp::Ne)),
                b'<' if next == Some(b'=') => self.two(Tok::Cmp(CmpOp::Le)),
                b'>' if next == Some(b'=') => self.two(Tok::Cmp(CmpOp::Ge)),
                b'<' => self.one(Tok::Cmp(CmpOp::Lt)),
                b'>' => self.one(Tok::Cmp(CmpOp::Gt)),
                b'=' => return Err(self.error(start, "'=' assigns in C: compare with '=='")),
                b'"' => self.string()?,
                b'-' | b'0'..=b'9' => self.int()?,
                c if c == b'_' || c.is_ascii_alphabetic() => {
                    while self
                        .bytes
                        .get(self.at)
                        .is_some_and(|&c| c == b'_' || c.is_ascii_alphanumeric())
                    {
                        self.at += 1;
                    }
                    Tok::Ident(self.expr[start..self.at].to_owned())
                }
                _ => {
                    let ch = self.expr[start..].chars().next().unwrap_or('?');
                    return Err(self.error(start, format!("unexpected character '{ch}'")));
                }
            };
            out.push((start, tok));
        }
    }

    fn one(&mut self, tok: Tok) -> Tok {
        self.at += 1;
        tok
    }

    fn two(&mut self, tok: Tok) -> Tok {
        self.at += 2;
        tok
    }

    fn int(&mut self) -> Result<Tok, ExprError> {
        let start = self.at;
        let negative = self.bytes[self.at] == b'-';
        if negative {
            self.at += 1;
        }
        let digits_start = self.at;
        while self
            .bytes
            .get(self.at)
            .is_some_and(|&c| c == b'_' || c.is_ascii_alphanumeric())
        {
            self.at += 1;
        }
        let text = self.expr[digits_start..self.at].replace('_', "");
        let (radix, digits) = match text.get(..2) {
            Some("0x" | "0X") => (16, &text[2..]),
            Some("0o" | "0O") => (8, &text[2..]),
            Some("0b" | "0B") => (2, &text[2..]),
            _ => (10, &text[..]),
        };
        let value = u64::from_str_radix(digits, radix).map_err(|_| {
            self.error(
                start,
                format!("'{}' is not a 64-bit number", &self.expr[start..self.at]),
            )
        })?;
        let value = i128::from(value);
        Ok(Tok::Int(if negative { -value } else { value }))
    }

    fn string(&mut self) -> Result<Tok, ExprError> {
        let start = self.at;
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.bytes.get(self.at) else {
                return Err(self.error(start, "the string has no closing '\"'"));
            };
            self.at += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.bytes.get(self.at) else {
                        return Err(self.error(start, "the string has no closing '\"'"));
                    };
                    self.at += 1;
                    out.push(match e {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'0' => 0,
                        b'x' => {
                            let hex = self.expr.get(self.at..self.at + 2).unwrap_or("");
                            let v = u8::from_str_radix(hex, 16)
                                .map_err(|_| self.error(self.at - 2, "\\x needs two hex digits"))?;
                            self.at += 2;
                            v
                        }
                        _ => return Err(self.error(self.at - 2, "unknown escape")),
                    });
                }
                c => out.push(c),
            }
        }
        if out.len() > MAX_STRING {
            return Err(self.error(start, format!("strings are at most {MAX_STRING} bytes")));
        }
        Ok(Tok::Str(out))
    }
}

struct Parser<'a> {
    expr: &'a str,
    toks: Vec<(usize, Tok)>,
    at: usize,
}

impl Parser<'_> {
    fn new(expr: &str) -> Result<Parser<'_>, ExprError> {
        let toks = Lexer {
            expr,
            bytes: expr.as_bytes(),
            at: 0,
        }
        .tokens()?;
        Ok(Parser { expr, toks, at: 0 })
    }

    fn error(&self, message: impl Into<String>) -> ExprError {
        let column = self
            .toks
            .get(self.at)
            .map_or(self.expr.len(), |(at, _)| *at)
            + 1;
        ExprError::Syntax {
            expr: self.expr.to_owned(),
            column,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(_, t)| t)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).map(|(_, t)| t.clone());
        self.at += usize::from(t.is_some());
        t
    }

    fn ident(&mut self, after: &str) -> Result<String, ExprError> {
        match self.peek() {
            Some(Tok::Ident(_)) => match self.next() {
                Some(Tok::Ident(s)) => Ok(s),
                _ => unreachable!(),
            },
            Some(t) => Err(self.error(format!(
                "a member name must follow {after}, not {}",
                t.describe()
            ))),
            None => Err(self.error(format!("a member name must follow {after}"))),
        }
    }

    fn access(&mut self) -> Result<AccessExpr, ExprError> {
        let root = match self.peek() {
            Some(Tok::Ident(_)) => self.ident("")?,
            Some(t) => return Err(self.error(format!("expected 'skb', found {}", t.describe()))),
            None => return Err(self.error("the expression is empty")),
        };
        let mut parts = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::Arrow) => {
                    self.at += 1;
                    parts.push(Part::Arrow(self.ident("'->'")?));
                }
                Some(Tok::Dot) => {
                    self.at += 1;
                    parts.push(Part::Dot(self.ident("'.'")?));
                }
                Some(Tok::LBracket) => {
                    self.at += 1;
                    let index = match self.next() {
                        Some(Tok::Int(v)) if v >= 0 => v as u64,
                        _ => {
                            self.at -= 1;
                            return Err(self.error("an index is a non-negative number"));
                        }
                    };
                    if self.next() != Some(Tok::RBracket) {
                        self.at -= 1;
                        return Err(self.error("expected ']'"));
                    }
                    parts.push(Part::Index(index));
                }
                _ => return Ok(AccessExpr { root, parts }),
            }
        }
    }

    fn end(&self) -> Result<(), ExprError> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(self.error(format!("unexpected {}", t.describe()))),
        }
    }
}

/// `access [& mask] [op literal]`.
pub fn parse_filter(expr: &str) -> Result<FilterAst, ExprError> {
    let mut p = Parser::new(expr)?;
    let access = p.access()?;
    let mask = if p.peek() == Some(&Tok::Amp) {
        p.at += 1;
        match p.next() {
            Some(Tok::Int(v)) if v >= 0 => Some(v),
            _ => {
                p.at -= 1;
                return Err(p.error("a mask is a non-negative number"));
            }
        }
    } else {
        None
    };
    let compare = match p.peek() {
        Some(Tok::Cmp(op)) => {
            let op = *op;
            p.at += 1;
            let literal = match p.next() {
                Some(Tok::Int(v)) => Literal::Int(v),
                Some(Tok::Str(s)) => Literal::String(s),
                _ => {
                    p.at -= 1;
                    return Err(p.error(format!("a number or a string must follow '{op}'")));
                }
            };
            Some((op, literal))
        }
        _ => None,
    };
    p.end()?;
    Ok(FilterAst {
        access,
        mask,
        compare,
    })
}

/// An access alone (`--output-skb-metadata`).
pub fn parse_access(expr: &str) -> Result<AccessExpr, ExprError> {
    let mut p = Parser::new(expr)?;
    let access = p.access()?;
    p.end()?;
    Ok(access)
}
