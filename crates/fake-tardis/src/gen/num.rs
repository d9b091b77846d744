//! Number formatting the way Tardis prints CSV cells: shortest decimal, no trailing zeros, no
//! ".0" on integers and never exponent notation ("0.00001", not "1e-05").
//!
//! Every value is an integer mantissa with a decimal scale (`mantissa / 10^scale`), so nothing
//! like `0.30000000000000004` can appear: floating point only ever decides *which* integer.

/// Powers of ten up to 10^18 (the largest that fits an i64/u64 mantissa comfortably).
const POW10: [u64; 19] = {
    let mut t = [1u64; 19];
    let mut i = 1;
    while i < 19 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

pub(crate) fn pow10(scale: u32) -> i64 {
    POW10[scale as usize] as i64
}

/// Appends the decimal digits of `v`.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

pub(crate) fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

/// Appends `mantissa / 10^scale` in shortest form: `push_dec(420001, 1)` gives "42000.1",
/// `push_dec(3, 3)` "0.003", `push_dec(64220, 1)` "6422", `push_dec(1, 5)` "0.00001".
pub(crate) fn push_dec(out: &mut Vec<u8>, mantissa: i64, scale: u32) {
    if scale == 0 || mantissa == 0 {
        push_i64(out, mantissa);
        return;
    }
    if mantissa < 0 {
        out.push(b'-');
    }
    let abs = mantissa.unsigned_abs();
    let p = POW10[scale as usize];
    push_u64(out, abs / p);
    let mut frac = abs % p;
    if frac == 0 {
        return;
    }
    let mut digits = scale;
    while frac.is_multiple_of(10) {
        frac /= 10;
        digits -= 1;
    }
    out.push(b'.');
    // Leading zeros of the fraction ("0.003" has two).
    let mut width = 1;
    while width < digits && frac >= POW10[width as usize] {
        width += 1;
    }
    for _ in width..digits {
        out.push(b'0');
    }
    push_u64(out, frac);
}

/// Rounds `x` to `scale` decimals and returns the integer mantissa.
pub(crate) fn mantissa(x: f64, scale: u32) -> i64 {
    (x * POW10[scale as usize] as f64).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(m: i64, s: u32) -> String {
        let mut v = Vec::new();
        push_dec(&mut v, m, s);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn shortest_decimal() {
        assert_eq!(dec(420_001, 1), "42000.1");
        assert_eq!(dec(3, 3), "0.003");
        assert_eq!(dec(64_220, 1), "6422");
        assert_eq!(dec(1, 5), "0.00001");
        assert_eq!(dec(0, 8), "0");
        assert_eq!(dec(-4, 4), "-0.0004");
        assert_eq!(dec(-123_450, 3), "-123.45");
        assert_eq!(dec(968_219, 2), "9682.19");
        assert_eq!(dec(10_000, 8), "0.0001");
        assert_eq!(dec(1_000_000_000, 8), "10");
        assert_eq!(dec(12, 0), "12");
        assert_eq!(dec(i64::MAX, 0), i64::MAX.to_string());
    }

    #[test]
    fn mantissa_rounds() {
        assert_eq!(mantissa(0.1 + 0.2, 2), 30);
        assert_eq!(mantissa(-53.056_549, 5), -5_305_655);
    }
}
