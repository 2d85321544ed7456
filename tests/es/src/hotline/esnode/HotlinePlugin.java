package hotline.esnode;

import java.util.Collection;
import java.util.List;
import java.util.function.Predicate;
import java.util.function.Supplier;

import org.apache.lucene.analysis.core.WhitespaceAnalyzer;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.index.analysis.PreBuiltAnalyzerProviderFactory;
import org.elasticsearch.indices.analysis.PreBuiltCacheFactory;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;
import org.elasticsearch.xcontent.XContentFactory;

/**
 * What the stock modules missing from Maven Central would give the platform: the node's root
 * endpoint (rest-root; the Python client's ping/info call it) and the "whitespace" analyzer
 * (analysis-common; the platform sends text already segmented by jieba).
 */
public class HotlinePlugin extends Plugin implements ActionPlugin, AnalysisPlugin {
    static final String VERSION = "8.19.21";

    @Override
    public List<PreBuiltAnalyzerProviderFactory> getPreBuiltAnalyzerProviderFactories() {
        return List.of(new PreBuiltAnalyzerProviderFactory(
            "whitespace", PreBuiltCacheFactory.CachingStrategy.ONE, WhitespaceAnalyzer::new));
    }

    @Override
    public Collection<RestHandler> getRestHandlers(Settings settings, NamedWriteableRegistry registry,
            RestController controller, ClusterSettings clusterSettings, IndexScopedSettings indexScoped,
            SettingsFilter filter, IndexNameExpressionResolver resolver, Supplier<DiscoveryNodes> nodes,
            Predicate<NodeFeature> features) {
        String nodeName = settings.get("node.name", "hotline-test");
        String cluster = settings.get("cluster.name", "elasticsearch");
        return List.of(new BaseRestHandler() {
            @Override
            public String getName() {
                return "hotline_root";
            }

            @Override
            public List<Route> routes() {
                return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
            }

            @Override
            protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
                return channel -> {
                    if (request.method() == RestRequest.Method.HEAD) {
                        channel.sendResponse(new RestResponse(RestStatus.OK, "application/json", ""));
                        return;
                    }
                    XContentBuilder b = XContentFactory.jsonBuilder();
                    b.startObject()
                        .field("name", nodeName)
                        .field("cluster_name", cluster)
                        .startObject("version")
                        .field("number", VERSION)
                        .field("build_flavor", "default")
                        .field("lucene_version", "9.12.2")
                        .field("minimum_wire_compatibility_version", "7.17.0")
                        .field("minimum_index_compatibility_version", "7.0.0")
                        .endObject()
                        .field("tagline", "You Know, for Search")
                        .endObject();
                    channel.sendResponse(new RestResponse(RestStatus.OK, b));
                };
            }
        });
    }
}
