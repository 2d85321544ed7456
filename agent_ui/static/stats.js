/* 统计分析: draws the page's charts with Apache ECharts (served from /static/vendor/echarts/)
   from the figures embedded in <script type="application/json" id="stats-data">. The tables
   next to each chart hold the same numbers, so the page reads without this script. */
(function () {
  'use strict';

  var source = document.getElementById('stats-data');
  if (!source || !window.echarts) { return; }
  var data = JSON.parse(source.textContent || '{}');
  var printing = document.body.classList.contains('report');
  var palette = ['#b3261e', '#0b57d0', '#0d652d', '#e37400', '#6d4c9f', '#00838f', '#8d6e63', '#5f6368'];
  var base = {
    color: palette,
    animation: !printing,
    textStyle: { fontFamily: '"Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif' },
    grid: { left: 48, right: 24, top: 36, bottom: 48, containLabel: true },
    tooltip: { trigger: 'axis' }
  };
  var charts = [];

  function merge(a, b) {
    var out = {};
    Object.keys(a).forEach(function (k) { out[k] = a[k]; });
    Object.keys(b).forEach(function (k) { out[k] = b[k]; });
    return out;
  }

  function lines(d, stacked) {
    return merge(base, {
      legend: { type: 'scroll', top: 0 },
      xAxis: { type: 'category', data: d.labels, boundaryGap: !!stacked },
      yAxis: { type: 'value', minInterval: 1 },
      dataZoom: d.labels.length > 40 && !printing ? [{ type: 'inside' }, { type: 'slider', height: 18, bottom: 4 }] : [],
      series: d.series.map(function (s) {
        return stacked
          ? { name: s.name, type: 'bar', stack: 'all', data: s.values, emphasis: { focus: 'series' } }
          : { name: s.name, type: 'line', smooth: true, showSymbol: d.labels.length < 40, data: s.values };
      })
    });
  }

  function bars(d, horizontal, unit) {
    var cat = { type: 'category', data: d.labels, axisLabel: { interval: 0, width: 110, overflow: 'truncate' } };
    var val = { type: 'value', minInterval: unit === '分' ? 0 : 1 };
    return merge(base, {
      tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
      xAxis: horizontal ? val : merge(cat, { axisLabel: { interval: 0, rotate: d.labels.length > 6 ? 30 : 0 } }),
      yAxis: horizontal ? merge(cat, { inverse: true }) : val,
      series: [{ type: 'bar', data: d.values, name: unit || '工单量', label: { show: d.values.length <= 15, position: horizontal ? 'right' : 'top' } }]
    });
  }

  function calls(d) {
    return merge(base, {
      legend: { top: 0 },
      xAxis: { type: 'category', data: d.labels, name: '时' },
      yAxis: [{ type: 'value', name: '来电', minInterval: 1 }, { type: 'value', name: '15秒接通率 %', min: 0, max: 100 }],
      series: [
        { name: '呼入', type: 'bar', data: d.offered },
        { name: '接通', type: 'bar', data: d.answered },
        { name: '放弃', type: 'bar', data: d.abandoned },
        { name: '15秒接通率', type: 'line', yAxisIndex: 1, data: d.rate15, smooth: true }
      ]
    });
  }

  var builders = {
    trend: function (d) { return lines(d, false); },
    kinds: function (d) { return lines(d, true); },
    categories: function (d) { return lines(d, false); },
    by_channel: function (d) { return bars(d, false); },
    by_kind: function (d) { return bars(d, false); },
    by_category: function (d) { return bars(d, true); },
    by_region: function (d) { return bars(d, true); },
    by_department: function (d) { return bars(d, true); },
    regions: function (d) { return bars(d, false, '分'); },
    hot: function (d) { return bars(d, true, '增量'); },
    calls: calls
  };

  function draw(node, option) {
    var chart = window.echarts.init(node, null, { renderer: 'canvas', locale: 'ZH' });
    chart.setOption(option);
    node.setAttribute('data-drawn', 'true');
    charts.push(chart);
  }

  Array.prototype.forEach.call(document.querySelectorAll('.chart[data-chart]'), function (node) {
    var name = node.getAttribute('data-chart');
    var d = data[name];
    if (!d || !builders[name]) { return; }
    var empty = d.values ? d.values.length === 0 : !(d.series && d.series.length) && !d.offered;
    if (empty) {
      node.classList.add('empty');
      node.textContent = '统计期内没有数据';
      return;
    }
    draw(node, builders[name](d));
  });

  // the ranking's score trend per department: a sparkline in its row
  var sparks = data.sparks || { months: [], scores: {} };
  Array.prototype.forEach.call(document.querySelectorAll('.spark[data-spark]'), function (node) {
    var scores = sparks.scores[node.getAttribute('data-spark')];
    if (!scores || !scores.some(function (x) { return x !== null; })) { return; }
    draw(node, {
      animation: false,
      grid: { left: 2, right: 2, top: 3, bottom: 3 },
      xAxis: { type: 'category', show: false, data: sparks.months },
      yAxis: { type: 'value', show: false, min: 0, max: 100 },
      tooltip: { trigger: 'axis', confine: true, valueFormatter: function (v) { return v === null ? '—' : v.toFixed(1) + ' 分'; } },
      series: [{ type: 'line', data: scores, symbol: 'none', connectNulls: true, lineStyle: { width: 1.5 }, areaStyle: { opacity: 0.12 } }]
    });
  });

  window.addEventListener('resize', function () { charts.forEach(function (c) { c.resize(); }); });
  window.addEventListener('beforeprint', function () { charts.forEach(function (c) { c.resize(); }); });
  document.body.setAttribute('data-charts', String(charts.length));
}());
