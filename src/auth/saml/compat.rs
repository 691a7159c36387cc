//! Fits IdPs' XML to what samael's parser reads, without changing what was signed.
//!
//! samael reads the `KeyInfo` of an `EncryptedData` only when that element itself declares
//! the `ds` (or `dsig`) prefix; IdPs declare the XML-DSig namespace wherever they like
//! (pysaml2 on `EncryptedData` under another prefix, others as a default namespace), and
//! their encrypted assertions then fail to parse. Adding `xmlns:ds` for the same namespace to
//! a `KeyInfo` start tag that lacks it is invisible to exclusive canonicalization (a prefix
//! that no name uses is not output), which SAML signatures use, so the signature still
//! verifies; under inclusive canonicalization it would not, and the login is refused as
//! unsigned — never accepted on the strength of the change.

const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

pub fn declare_ds_on_key_info(xml: &str) -> String {
    if !xml.contains("EncryptedAssertion") {
        return xml.to_string();
    }
    let mut out = String::with_capacity(xml.len() + 256);
    let mut rest = xml;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let tag_and_after = &rest[lt..];
        let Some(gt) = tag_and_after.find('>') else {
            break;
        };
        let tag = &tag_and_after[..=gt];
        out.push_str(&with_ds(tag));
        rest = &tag_and_after[gt + 1..];
    }
    out.push_str(rest);
    out
}

/// `tag` (`<…>`) with `xmlns:ds` declared, if it is a `KeyInfo` start tag that has none.
fn with_ds(tag: &str) -> String {
    let name_end = tag[1..]
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .map(|i| i + 1)
        .unwrap_or(tag.len());
    let name = &tag[1..name_end];
    let local = name.rsplit(':').next().unwrap_or(name);
    if local != "KeyInfo" || tag.contains("xmlns:ds=") || tag.contains("xmlns:dsig=") {
        return tag.to_string();
    }
    format!(
        "{} xmlns:ds=\"{DSIG}\"{}",
        &tag[..name_end],
        &tag[name_end..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_info_tags_get_the_ds_prefix_and_nothing_else_changes() {
        let xml = "<p:Response><a:EncryptedAssertion><x:EncryptedData xmlns:n=\"d\">\
                   <n:KeyInfo><n:KeyInfo Id=\"k\"/></n:KeyInfo><ds:KeyInfo xmlns:ds=\"d\"/>\
                   </x:EncryptedData></a:EncryptedAssertion><KeyInfoX/></p:Response>";
        let fixed = declare_ds_on_key_info(xml);
        assert_eq!(
            fixed,
            format!(
                "<p:Response><a:EncryptedAssertion><x:EncryptedData xmlns:n=\"d\">\
                 <n:KeyInfo xmlns:ds=\"{DSIG}\"><n:KeyInfo xmlns:ds=\"{DSIG}\" Id=\"k\"/>\
                 </n:KeyInfo><ds:KeyInfo xmlns:ds=\"d\"/></x:EncryptedData>\
                 </a:EncryptedAssertion><KeyInfoX/></p:Response>"
            )
        );
        let plain = "<Response><KeyInfo/></Response>";
        assert_eq!(
            declare_ds_on_key_info(plain),
            plain,
            "only encrypted answers"
        );
    }
}
